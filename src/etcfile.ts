// The colon-separated files of /etc: passwd, group, subuid, subgid.

/** The records of such a file: one array of fields per line, skipping blank lines and comments. */
export function records(text: string | undefined): string[][] {
  return (text ?? "")
    .split("\n")
    .filter((l) => l.trim() !== "" && !l.startsWith("#"))
    .map((l) => l.split(":"));
}

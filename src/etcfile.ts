// The colon-separated files of /etc: passwd, group, subuid, subgid.

/** The records of such a file: one array of fields per trimmed line, skipping blank lines and comments. */
export function records(text: string | undefined): string[][] {
  return (text ?? "")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => l.split(":"));
}

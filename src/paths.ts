// Path arithmetic without node:path (see src/linux/sys.ts for why).

/** Join and normalise: "a/b", "../c" -> "a/c"; keeps a leading "/". */
export function join(...parts: string[]): string {
  const abs = parts[0]?.startsWith("/") ?? false;
  const out: string[] = [];
  for (const part of parts.join("/").split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length && out[out.length - 1] !== "..") out.pop();
      else if (!abs) out.push("..");
      continue;
    }
    out.push(part);
  }
  return (abs ? "/" : "") + out.join("/") || (abs ? "/" : ".");
}

/** An absolute path for p, relative to base (default: the working directory). */
export function resolve(p: string, base = process.cwd()): string {
  return p.startsWith("/") ? join(p) : join(base, p);
}

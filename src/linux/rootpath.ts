// Resolve a path inside a root filesystem from the host, the way the kernel
// would after chroot: symlinks, "..", and absolute links all stay inside.
// The C stage does the same with openat2(RESOLVE_IN_ROOT) for every mount;
// this copy serves the host-side reads (/etc/passwd, /etc/group) of `run`.
import { readFile, readlink, stat } from "./sys.ts";

export interface FsProbe {
  /** "link" for a symlink, "other" for anything else, undefined if missing. */
  kind(hostPath: string): "link" | "other" | undefined;
  readlink(hostPath: string): string;
}

export const hostFs: FsProbe = {
  kind(p) {
    const st = stat(p, false);
    return st === undefined ? undefined : st.kind === "link" ? "link" : "other";
  },
  readlink,
};

/** The host path of `path` resolved inside `root`, or undefined when a
 * component is missing. Throws after 40 symlinks (ELOOP). */
export function resolveInRoot(root: string, path: string, fs: FsProbe = hostFs): string | undefined {
  const base = root.replace(/\/+$/, "");
  const done: string[] = [];
  const todo = path.split("/").filter(Boolean).reverse();
  let links = 0;
  while (todo.length > 0) {
    const part = todo.pop()!;
    if (part === ".") continue;
    if (part === "..") {
      done.pop(); // ".." at the root stays at the root
      continue;
    }
    const host = `${base}/${[...done, part].join("/")}`;
    const kind = fs.kind(host);
    if (kind === undefined) return undefined;
    if (kind === "link") {
      if (++links > 40) throw new Error(`too many levels of symbolic links in ${path}`);
      const target = fs.readlink(host);
      if (target.startsWith("/")) done.length = 0;
      todo.push(...target.split("/").filter(Boolean).reverse());
      continue;
    }
    done.push(part);
  }
  return `${base}/${done.join("/")}`;
}

/** Read a file of the root filesystem, or undefined when it does not exist. */
export function readInRoot(root: string, path: string): string | undefined {
  try {
    const host = resolveInRoot(root, path);
    return host === undefined ? undefined : readFile(host);
  } catch {
    return undefined;
  }
}

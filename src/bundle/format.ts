// The portable bundle: what it holds and how it is checked.
//
// One file: a tar stream compressed in independent frames (zstd frames, or
// gzip members), so every core can compress and decompress its own, and
// GNU tar reads it (`tar -xf` detects the compression). Unpacked with plain
// tar it is an OCI runtime bundle:
//
//   bunker.json     what the bundle is: format, source, the image config,
//                   declared volumes, owners a one-id store could not keep
//   config.json     the OCI runtime config: process, hostname, mounts, limits
//   rootfs/...      the file system, numeric owners relative to the container
//   bunker.sha256   last: a line {"digest", "entries"}, then one JSON row per
//                   entry above (path, type, mode, owner, mtime, size, link,
//                   sha256 of the content, and since format 2 its xattrs, if
//                   it has any); the digest is the sha256 of the rows, one
//                   per line: the bundle's digest
//
// Import recomputes every row from what it reads, and makes nothing visible
// unless all rows and the bundle's digest agree.
import type { ImageConfig } from "../image/store.ts";
import type { TarHeader } from "../image/tar.ts";
import { DEFAULT_CAPS } from "../linux/caps.ts";
import { defaultMounts, defaultNamespaces, MASKED_PATHS, READONLY_PATHS } from "../spec/defaults.ts";
import type { Capabilities, Mount, Process, Spec } from "../spec/types.ts";

export const FORMAT = "bunker-bundle";
/** 2: a row covers its entry's xattrs (1 had none in its rows, so xattrs went unchecked). */
export const VERSION = 2;
export const MANIFEST = "bunker.json";
export const DIGESTS = "bunker.sha256";
export const ROOTFS = "rootfs";

export interface BundleManifest {
  format: typeof FORMAT;
  version: number;
  created: string;
  source: { kind: "container" | "image"; id: string; name?: string };
  /** The image config the container came from (Env, Cmd, ... and Volumes). */
  image: ImageConfig;
  /** Owners the exporting store could not hold on disk: path -> [uid, gid, mode]. */
  owners?: Record<string, [number, number, number]>;
}

export type Row = [path: string, type: string, mode: number, uid: number, gid: number, mtime: number, size: number, link: string, sha256: string, xattrs?: [string, string][]];

/** One entry's row of bunker.sha256: its xattrs, which import sets, by name, values in base64, only where there are any. */
export function row(h: TarHeader, sha256: string): Row {
  const r: Row = [h.path, h.type, h.mode, h.uid, h.gid, h.mtime, h.size, h.linkname, sha256];
  const xattrs = h.xattrs && Object.entries(h.xattrs);
  if (xattrs?.length) r.push(xattrs.sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, Buffer.from(v).toString("base64")]));
  return r;
}

/** Rows kept in memory: beyond this many entries only the digest is checked. */
const KEEP_ROWS = 500_000;

/** Rows hashed one by one into the bundle's digest. */
export class Digests {
  private readonly hasher = new Bun.CryptoHasher("sha256");
  private final?: string;
  readonly lines: string[] = [];
  count = 0;

  add(r: Row): void {
    const line = JSON.stringify(r);
    this.hasher.update(`${line}\n`);
    if (++this.count <= KEEP_ROWS) this.lines.push(line);
  }

  get complete(): boolean {
    return this.count <= KEEP_ROWS;
  }

  /** The digest of all rows (after the last one is added). */
  digest(): string {
    this.final ??= `sha256:${this.hasher.digest("hex")}`;
    return this.final;
  }

  /** The text of bunker.sha256. */
  file(): string {
    return `${JSON.stringify({ digest: this.digest(), entries: this.count })}\n${this.lines.join("\n")}\n`;
  }
}

/** The runtime config written into a bundle: what runs, without this host's ids. */
export function portableSpec(spec: Spec): Spec {
  const out = structuredClone(spec);
  out.root = { path: ROOTFS, readonly: spec.root?.readonly };
  // host paths of volumes mean nothing elsewhere: they go as declarations (bunker.json)
  out.mounts = (spec.mounts ?? []).filter((m) => !binds(m));
  return out;
}

/** A bind mount: of a host path, whatever its type says. */
function binds(m: Mount): boolean {
  return m.type === "bind" || (m.options ?? []).some((o) => o === "bind" || o === "rbind");
}

/** A tmpfs of the bundle's own, at a place of its choosing (not a bind, nor over a standard mount). */
function ownTmpfs(m: Mount, standard: Mount[]): boolean {
  return m.type === "tmpfs" && !binds(m) && !(m.source ?? "").startsWith("/") && !standard.some((d) => d.destination === m.destination);
}

/**
 * An imported bundle's runtime config, as far as an image may decide it:
 * what runs, how, and within which limits, never what it reaches of the
 * host, as `docker load` gives an image no say over its container's
 * privileges. It gets every namespace of its own (a network one too:
 * `--network host` is the user's choice, at run), mounts nothing of the
 * host's files, keeps the default masked and read-only paths, holds no
 * capability beyond Docker's default set, and gains no privileges through
 * setuid programs; what a bundle asked for beyond that is named in
 * `dropped`, for a notice. The result is its own fixed point: run applies
 * it again to what older imports stored.
 */
export function appSpec(spec: Spec): { spec: Spec; dropped: string[] } {
  const dropped: string[] = [];
  const out: Spec = { ociVersion: spec.ociVersion, root: { path: ROOTFS, readonly: spec.root?.readonly } };
  if (spec.hostname !== undefined) out.hostname = spec.hostname;
  if (spec.domainname !== undefined) out.domainname = spec.domainname;
  if (spec.annotations !== undefined) out.annotations = spec.annotations;
  const p = spec.process;
  if (p) {
    const { terminal, consoleSize, args, env, rlimits } = p;
    out.process = JSON.parse(JSON.stringify({ terminal, consoleSize, user: p.user, args, env, cwd: p.cwd, rlimits, noNewPrivileges: true })) as Process; // without what is undefined
    if (p.noNewPrivileges === false) dropped.push("noNewPrivileges false");
    if (p.capabilities) {
      // as bunker run makes them: within Docker's default set, none inheritable or ambient, and none in effect for a user other than root
      const caps: Capabilities = {};
      const beyond = new Set<string>();
      for (const set of ["bounding", "effective", "permitted"] as const) {
        const names = p.capabilities[set];
        if (names === undefined) continue;
        const none = set !== "bounding" && p.user.uid !== 0;
        caps[set] = none ? [] : names.filter((c) => DEFAULT_CAPS.includes(c) || void beyond.add(c));
        if (none && names.length) dropped.push(`${set} capabilities of user ${p.user.uid}`);
      }
      for (const set of ["inheritable", "ambient"] as const) {
        if (p.capabilities[set] === undefined) continue;
        caps[set] = [];
        if (p.capabilities[set].length) dropped.push(`${set} capabilities`);
      }
      out.process.capabilities = caps;
      for (const c of beyond) dropped.push(`capability ${c}`);
    }
  }
  // the standard mounts as bunker makes them (another proc, sysfs or cgroup elsewhere, or one with other
  // options, would show what the defaults mask or make read-only), then its own tmpfs mounts
  const standard = defaultMounts({ network: true, gid5: true });
  const own = (spec.mounts ?? []).filter((m) => {
    if (ownTmpfs(m, standard)) return true;
    const same = standard.some((d) => d.destination === m.destination && (d.type === m.type || (m.type === "none" && d.destination === "/sys")));
    if (!same) dropped.push(`mount of ${m.source ?? m.type ?? "?"} on ${m.destination}`); // a standard one is made as bunker makes it, whatever it said
    return false;
  });
  out.mounts = [...standard, ...own];
  const l = spec.linux ?? {};
  const types = new Set((l.namespaces ?? []).map((n) => n.type));
  for (const n of l.namespaces ?? []) if (n.path !== undefined) dropped.push(`joining the ${n.type} namespace at ${n.path}`);
  // network and cgroup ones may be missing for good reasons (--network host, an old kernel); user and mount ones are always made
  const shared = defaultNamespaces(true).filter((n) => !types.has(n.type) && ["pid", "ipc", "uts"].includes(n.type));
  for (const n of shared) dropped.push(`the host's ${n.type} namespace`);
  out.linux = {
    namespaces: defaultNamespaces(true),
    maskedPaths: [...new Set([...MASKED_PATHS, ...(l.maskedPaths ?? [])])],
    readonlyPaths: [...new Set([...READONLY_PATHS, ...(l.readonlyPaths ?? [])])],
  };
  if (l.resources !== undefined) out.linux.resources = l.resources;
  if (l.sysctl !== undefined) out.linux.sysctl = l.sysctl;
  // what bunker's export never writes, and its run would not apply: named, not left out in silence
  if ((spec as { hooks?: unknown }).hooks !== undefined) dropped.push("hooks");
  if (l.seccomp !== undefined) dropped.push("a seccomp profile");
  if (l.devices?.length) dropped.push("device nodes");
  return { spec: out, dropped };
}

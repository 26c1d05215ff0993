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
import type { Spec } from "../spec/types.ts";

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
  out.mounts = (spec.mounts ?? []).filter((m) => m.type !== "bind" && !(m.options ?? []).includes("rbind") && !(m.options ?? []).includes("bind"));
  return out;
}

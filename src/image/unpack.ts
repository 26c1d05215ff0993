// From tar entries to a directory on disk. Every archive is hostile until
// proven otherwise: this decides what each entry may do, and the C stage
// (ffi/unpack.c) carries out the result inside the user namespace, beneath
// the target directory, never following a symlink.
import { BunkerError } from "../errors.ts";
import { compileUnpack } from "../linux/compile.ts";
import { mapsContain } from "../linux/idmap.ts";
import { spawnStage } from "../linux/stage.ts";
import * as sys from "../linux/sys.ts";
import type { IdMapping } from "../spec/types.ts";
import { encodeName, nameLength } from "./names.ts";
import { type Entries, type EntryType, entrySource, type FileDigest, type TarHeader } from "./tar.ts";

export const U = { END: 0, DIR: 1, FILE: 2, SYMLINK: 3, HARDLINK: 4, WHITEOUT: 5, OPAQUE: 6, XATTR: 7, TIMES: 8, UNLINK: 9, FIFO: 10, DIGESTS: 11, FAIL: 12 } as const;
const UF_CHOWN = 0x1;
const UF_DIR = 0x2;
const UF_HASH = 0x4;

export interface Record_ {
  type: number;
  flags: number;
  path: string;
  link?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  size?: number;
}

/** The 40-byte header and names of a record (ffi/unpack.c reads the same layout; decodeRecordHead below reads it back). */
export function encodeRecord(r: Record_): Uint8Array {
  const path = encodeName(r.path);
  const link = r.link ? encodeName(r.link) : NONE;
  const out = new Uint8Array(40 + path.length + link.length);
  const mtime = r.mtime ?? 0;
  const sec = Math.floor(mtime);
  out[0] = r.type;
  out[1] = r.flags;
  out[2] = path.length & 0xff;
  out[3] = path.length >>> 8;
  le32(out, 4, r.mode ?? 0);
  le32(out, 8, r.uid ?? 0);
  le32(out, 12, r.gid ?? 0);
  le32(out, 16, link.length);
  le32(out, 20, Math.round((mtime - sec) * 1e9));
  le64(out, 24, sec);
  le64(out, 32, r.size ?? 0);
  out.set(path, 40);
  out.set(link, 40 + path.length);
  return out;
}

const NONE = new Uint8Array(0);

// byte by byte: a DataView per record cost more than the rest of encoding it
function le32(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
  b[off + 2] = (v >>> 16) & 0xff;
  b[off + 3] = (v >>> 24) & 0xff;
}

/** A safe integer as 64-bit two's complement (a negative mtime is before 1970). */
function le64(b: Uint8Array, off: number, v: number): void {
  const hi = Math.floor(v / 2 ** 32);
  le32(b, off, v - hi * 2 ** 32);
  le32(b, off + 4, hi);
}


/** A record's 40-byte header, as OP_PACK writes it: the names' lengths, then the rest. */
export function decodeRecordHead(head: Uint8Array): { pathLen: number; linkLen: number; record: Required<Omit<Record_, "path" | "link">> } {
  const dv = new DataView(head.buffer, head.byteOffset, 40);
  return {
    pathLen: dv.getUint16(2, true),
    linkLen: dv.getUint32(16, true),
    record: {
      type: head[0]!,
      flags: head[1]!,
      mode: dv.getUint32(4, true),
      uid: dv.getUint32(8, true),
      gid: dv.getUint32(12, true),
      mtime: Number(dv.getBigInt64(24, true)) + dv.getUint32(20, true) / 1e9,
      size: Number(dv.getBigUint64(32, true)),
    },
  };
}

export class ArchiveError extends BunkerError {}

/** A name with an empty, "." or ".." part anywhere (a leading or trailing "/" makes an empty one). */
const UNCLEAN = /(^|\/)\.{0,2}(\/|$)/;

/** A tar name as a clean relative path; "" is the root itself. Refuses absolute paths and "..". */
/** The longest path or symbolic link target: PATH_MAX less its NUL, as the stage and export take (and Linux). */
const PATH_BYTES = 4095;

export function cleanPath(raw: string, what = "entry"): string {
  if (raw.length < 86 && !UNCLEAN.test(raw)) return raw; // clean already, and too short for a part longer than 255 bytes
  if (raw.startsWith("/")) throw new ArchiveError(`refusing ${what} "${raw}": an absolute path`);
  const parts = raw.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw new ArchiveError(`refusing ${what} "${raw}": it climbs out of the root with ".."`);
  // a UTF-16 unit is at most 3 bytes of UTF-8: only names that might be too long are measured
  for (const p of parts) if (p.length > 85 && nameLength(p) > 255) throw new ArchiveError(`refusing ${what} "${raw}": a name longer than 255 bytes`);
  const path = parts.join("/");
  if (path.length > 1365 && nameLength(path) > PATH_BYTES) throw new ArchiveError(`refusing ${what} "${raw.slice(0, 80)}...": the path is too long`);
  return path;
}

export interface UnpackOptions {
  /** The maps of the user namespace the stage unpacks in. */
  uidMappings: IdMapping[];
  gidMappings: IdMapping[];
  /** An image layer: .wh. names are whiteouts (overlayfs's format on disk). */
  layer: boolean;
  maxEntries: number;
  maxBytes: number;
  /** The stage hashes the files whose entries ask for it (entry.digest): host.unpackerHashes(). */
  hash?: boolean;
}

export interface Altered {
  uid: number;
  gid: number;
  mode: number;
}

export interface Planned {
  entries: number;
  bytes: number;
  /** Entries whose owner or mode could not be kept as archived, with what the archive said. */
  altered: Map<string, Altered>;
  /** Device nodes left out (rootless cannot make them). */
  devices: string[];
  /** Extended attributes left out (only user.* and security.capability are kept). */
  xattrsSkipped: number;
  /** Files the stage hashed whose digests the sink has not been asked for yet. */
  hashed: FileDigest[];
}

/** The most files hashed between two U_DIGESTS records (ffi/unpack.c holds that many: HASHED_MAX). */
export const DIGEST_BATCH = 4096;

export interface Sink {
  /** A record's header and names; the file data or xattr value follows through data(). */
  record(r: Record_, bytes: Uint8Array): void;
  data(bytes: Uint8Array): void;
  /** After a U_DIGESTS record: the sha256 (hex) of the last `count` files hashed, in order (only with opts.hash). */
  digests?(count: number): string[];
}

/** A record, and the bytes that follow it (an xattr's value). */
type Step = Record_ & { value?: Uint8Array };

/**
 * Turn tar entries into records for ffi/unpack.c, writing them to sink.
 * Throws ArchiveError for anything hostile. Pure but for the sink: the
 * unit tests run it without a stage. It waits only where its source must
 * read on (EntrySource): most entries go through without a promise.
 */
export async function planUnpack(entries: Entries, opts: UnpackOptions, sink: Sink): Promise<Planned> {
  // the decisions are made by synchronous code: an async function this size took the JIT ~200 ms of CPU to compile
  const planner = new Planner(opts);
  const source = entrySource(entries);
  const send = (steps: Step[]) => {
    for (const r of steps) {
      sink.record(r, encodeRecord(r));
      if (r.value) sink.data(r.value);
    }
  };
  const collect = () => {
    const batch = planner.result.hashed.splice(0);
    if (!batch.length) return;
    send([{ type: U.DIGESTS, flags: 0, path: "" }]);
    sink.digests!(batch.length).forEach((d, i) => (batch[i]!.sha256 = d));
  };
  try {
    for (;;) {
      const next = source.nextEntry();
      const entry = next instanceof Promise ? await next : next;
      if (!entry) break;
      const file = planner.entry(entry.header);
      if (file && opts.hash && entry.digest) planner.hash(entry.digest);
      if (planner.steps.length) send(planner.take());
      if (!file) continue;
      const whole = entry.readNow?.();
      if (!whole) for await (const chunk of entry.data()) sink.data(chunk);
      else if (whole.length) sink.data(whole);
      planner.xattrs(entry.header, file);
      if (planner.steps.length) send(planner.take());
      if (planner.result.hashed.length === DIGEST_BATCH) collect();
    }
  } catch (e) {
    await source.close(); // the stream stops here: its file closes, its buffers go back
    throw e;
  }
  collect();
  send(planner.end());
  return planner.result;
}

/** The directory a clean path is in; "" for the root. */
const parentOf = (path: string) => path.slice(0, Math.max(path.lastIndexOf("/"), 0));

/** What each entry does to the tree so far, as records. */
class Planner {
  private readonly tree = new Map<string, EntryType>(); // what exists so far
  private readonly below = new Map<string, Set<string>>(); // a directory's entries in the tree, by path
  private readonly dirTimes = new Map<string, number>();
  readonly result: Planned = { entries: 0, bytes: 0, altered: new Map(), devices: [], xattrsSkipped: 0, hashed: [] };
  /** Records for the entry at hand, in order. */
  steps: Step[] = [];
  // setuid/setgid mean something only where the owner is kept and other users exist
  private readonly keepSetid: boolean;

  constructor(private readonly opts: UnpackOptions) {
    this.keepSetid = opts.uidMappings.some((m) => m.size > 1 || m.containerID !== 0);
  }

  take(): Step[] {
    const steps = this.steps;
    this.steps = [];
    return steps;
  }

  /** An entry's records; for a file, its path (its data follows them, then xattrs()). */
  entry(h: TarHeader): string | undefined {
    const { opts, tree, result } = this;
    if (++result.entries > opts.maxEntries) throw new ArchiveError(`refusing the archive: more than ${opts.maxEntries} entries`);
    let path = cleanPath(h.path);
    if (path === "") return; // the root itself: it is ours
    const base = path.slice(path.lastIndexOf("/") + 1);
    const parent = parentOf(path);

    if (opts.layer && base.startsWith(".wh.")) {
      if (parent) this.ensureParents(`${parent}/${base}`, h.mtime);
      if (base === ".wh..wh..opq") {
        if (parent) this.steps.push({ type: U.OPAQUE, flags: 0, path: parent }); // an opaque root hides nothing below it in a first layer
        return;
      }
      if (base.startsWith(".wh..wh.")) return; // aufs bookkeeping (.wh..wh.plnk and such)
      const hidden = base.slice(4);
      if (hidden === "" || hidden === "." || hidden === "..") throw new ArchiveError(`refusing whiteout "${h.path}": it names no file`);
      path = parent ? `${parent}/${hidden}` : hidden;
      // the image spec: a whiteout hides what the layers below have there, never what this layer has, whatever
      // the order: a directory of this layer's own stays, made opaque; a file of its own replaces what is below anyway
      const own = tree.get(path);
      if (own === "dir") this.steps.push({ type: U.OPAQUE, flags: 0, path });
      if (own !== undefined) return;
      this.steps.push({ type: U.WHITEOUT, flags: 0, path });
      this.set(path, "char");
      return;
    }

    this.ensureParents(path, h.mtime);
    if (h.type === "char" || h.type === "block") {
      result.devices.push(path);
      return;
    }
    const existing = tree.get(path);
    // a directory where this layer whited out what is below: opaque, so that what was hidden stays so (the image spec)
    const hides = opts.layer && existing === "char" && h.type === "dir";
    if (existing !== undefined && !(existing === "dir" && h.type === "dir")) this.remove(path);

    const keep = this.owned(h);
    let mode = h.mode & 0o7777;
    if (!keep || !this.keepSetid) mode &= ~0o6000;
    if (!keep || mode !== (h.mode & 0o7777)) result.altered.set(path, { uid: h.uid, gid: h.gid, mode: h.mode & 0o7777 });
    const flags = keep && (h.uid !== 0 || h.gid !== 0) ? UF_CHOWN : 0;
    const common = { flags, path, mode, uid: h.uid, gid: h.gid, mtime: h.mtime };

    switch (h.type) {
      case "dir":
        this.steps.push({ type: U.DIR, ...common });
        if (hides) this.steps.push({ type: U.OPAQUE, flags: 0, path });
        this.dirTimes.set(path, h.mtime);
        break;
      case "file":
        result.bytes += h.size;
        if (result.bytes > opts.maxBytes) throw new ArchiveError(`refusing the archive: more than ${opts.maxBytes} bytes of files`);
        this.steps.push({ type: U.FILE, ...common, size: h.size });
        this.set(path, "file");
        return path;
      case "symlink":
        if (h.linkname === "" || nameLength(h.linkname) > PATH_BYTES) throw new ArchiveError(`refusing symbolic link "${h.path}": a bad target`);
        this.steps.push({ type: U.SYMLINK, ...common, link: h.linkname });
        break;
      case "hardlink": {
        const target = cleanPath(h.linkname, `hard link "${h.path}" to`);
        const kind = tree.get(target);
        if (kind === undefined && result.devices.includes(target)) return void result.devices.push(path); // left out with it
        // "char" in the tree is a whiteout (devices are left out of it): a link to one would hide a second path below
        if (kind === undefined || kind === "dir" || kind === "char") {
          throw new ArchiveError(`refusing hard link "${h.path}": its target "${h.linkname}" is not a file earlier in the archive`);
        }
        this.steps.push({ type: U.HARDLINK, flags: 0, path, link: target });
        this.set(path, kind); // a link to a symlink is a symlink, to a FIFO a FIFO
        this.xattrs(h, path);
        return;
      }
      case "fifo":
        this.steps.push({ type: U.FIFO, ...common });
        break;
    }
    this.set(path, h.type);
    this.xattrs(h, path);
  }

  /** The stage is to hash the file just planned (entry() returned its path). */
  hash(digest: FileDigest): void {
    this.steps.at(-1)!.flags |= UF_HASH;
    digest.byUnpacker = true;
    this.result.hashed.push(digest);
  }

  /** The extended attributes kept (after a file's data). */
  xattrs(h: TarHeader, path: string): void {
    if (!h.xattrs) return;
    for (const [name, value] of Object.entries(h.xattrs)) {
      const user = name.startsWith("user.") && !name.startsWith("user.overlay.");
      // a file capability goes only with the owner it was given to (one the map cannot hold makes it root's here)
      const allowed = user || (name === "security.capability" && this.owned(h));
      if (!allowed || h.type === "symlink" || h.type === "hardlink" || value.length > 65536) {
        this.result.xattrsSkipped++;
        continue;
      }
      this.steps.push({ type: U.XATTR, flags: 0, path, link: name, size: value.length, value });
    }
  }

  /** The last records: directory times (creating what is inside a directory changes its mtime), then the end. */
  end(): Step[] {
    for (const [path, mtime] of this.dirTimes) this.steps.push({ type: U.TIMES, flags: 0, path, mtime });
    this.steps.push({ type: U.END, flags: 0, path: "" });
    return this.take();
  }

  private owned(h: TarHeader): boolean {
    return mapsContain(this.opts.uidMappings, h.uid) && mapsContain(this.opts.gidMappings, h.gid);
  }

  private ensureParents(path: string, mtime: number): void {
    // a directory in the tree has every directory above it there too (remove() takes what is below with it)
    const last = path.lastIndexOf("/");
    if (last < 0 || this.tree.get(path.slice(0, last)) === "dir") return;
    for (let at = path.indexOf("/"); at !== -1; at = path.indexOf("/", at + 1)) {
      const dir = path.slice(0, at);
      const kind = this.tree.get(dir);
      if (kind === "dir") continue;
      if (kind === "symlink") throw new ArchiveError(`refusing "${path}": it would be written through the symbolic link "${dir}"`);
      // in a layer, "char" is a whiteout: an entry below it makes the directory again, opaque (as entry() does)
      const hides = this.opts.layer && kind === "char";
      if (kind !== undefined && !hides) throw new ArchiveError(`refusing "${path}": "${dir}" is not a directory`);
      if (hides) this.remove(dir);
      this.steps.push({ type: U.DIR, flags: 0, path: dir, mode: 0o755, mtime });
      if (hides) this.steps.push({ type: U.OPAQUE, flags: 0, path: dir });
      this.set(dir, "dir");
      this.dirTimes.set(dir, mtime);
    }
  }

  /** Record what is at path now, and file it under its directory. */
  private set(path: string, kind: EntryType): void {
    if (!this.tree.has(path)) {
      const parent = parentOf(path);
      let set = this.below.get(parent);
      if (!set) this.below.set(parent, (set = new Set()));
      set.add(path);
    }
    this.tree.set(path, kind);
  }

  /** Remove path, and first what is below it: a walk of that subtree only (a scan of the whole tree made replacements quadratic). */
  private remove(path: string): void {
    const { tree, dirTimes } = this;
    const kind = tree.get(path);
    if (kind === undefined) return;
    if (kind === "dir") {
      for (const child of [...(this.below.get(path) ?? [])]) this.remove(child);
      this.below.delete(path);
    }
    this.below.get(parentOf(path))?.delete(path);
    this.steps.push({ type: U.UNLINK, flags: kind === "dir" ? UF_DIR : 0, path });
    tree.delete(path);
    dirTimes.delete(path);
  }
}

export interface UnpackResult extends Planned {
  /** Records the stage applied. */
  records: number;
}

/**
 * Unpack entries into dir (an empty directory of the caller's), running
 * ffi/unpack.c in a user namespace with opts' maps.
 */
export async function unpack(
  dir: string,
  entries: Entries,
  opts: UnpackOptions,
  ctx: { uid: number; gid: number; helper: (name: "newuidmap" | "newgidmap") => string | undefined },
): Promise<UnpackResult> {
  const stage = await spawnStage(compileUnpack(dir, opts, ctx));
  const paths: string[] = []; // record number -> path, for messages
  const xattrs = new Set<number>(); // the record numbers of xattrs
  const out = new BatchWriter(stage.stdin);
  let planned: Planned | undefined;
  let failure: unknown;
  let said = ""; // read from stdout where digests were expected: the stage's result
  try {
    planned = await planUnpack(entries, opts, {
      // an xattr's record names it: a file system out of room for xattrs says ENOSPC, as if the disk were full
      record: (r, bytes) => {
        if (r.type === U.XATTR) xattrs.add(paths.length);
        paths.push(r.type === U.XATTR ? `${r.path} (its xattr ${r.link})` : r.path);
        out.write(bytes);
      },
      data: (bytes) => out.write(bytes),
      digests: (count) => {
        out.flush();
        const text = sys.readExactly(stage.stdout, count * 65, "the unpacker's digests");
        if (!new RegExp(`^([0-9a-f]{64}\n){${count}}$`).test(text)) throw new StageStopped((said = text));
        return text.split("\n", count);
      },
    });
    out.flush();
  } catch (e) {
    failure = e;
  }
  sys.close(stage.stdin);
  const result = (said + sys.readFd(stage.stdout, "the unpacker's result")).trim(); // one line, at its exit
  const code = await stage.proc.exited;
  const m = /^ok (\d+)$/.exec(result);
  // a stage that stopped reading (EPIPE) or hashing has said why in its result line
  if (failure && !(failure instanceof sys.SysError && failure.code === "EPIPE") && !(failure instanceof StageStopped)) throw failure;
  if (code !== 0 || !m) {
    const f = /^fail (\d+) (\d+)$/.exec(result);
    if (!f) throw new BunkerError(`unpacking into ${dir} failed (the stage exited with ${code})`);
    const at = paths[Number(f[1])] ?? `record ${f[1]}`;
    const err = new sys.SysError("unpack", Number(f[2]), at);
    // ext4 and others say ENOSPC for a value larger than an inode's room for xattrs, however empty the disk
    if (err.code === "ENOSPC" && xattrs.has(Number(f[1]))) throw new BunkerError(`unpack ${at}: the file system cannot hold an extended attribute this large (${err.reason})`);
    throw new BunkerError(err.message);
  }
  if (failure) throw new BunkerError(`unpacking into ${dir} failed: the stage said "ok" where digests were due`);
  return { ...planned!, records: Number(m[1]) };
}

/** The stage wrote something else where digests were due: its result line, read with them. */
class StageStopped extends Error {}

/** Small writes gathered into large ones: a record is 40 bytes and a name. */
class BatchWriter {
  private buf = new Uint8Array(256 << 10);
  private len = 0;

  constructor(private readonly fd: number) {}

  write(bytes: Uint8Array): void {
    if (bytes.length > this.buf.length - this.len || bytes.length >= this.buf.length / 2) this.flush();
    if (bytes.length >= this.buf.length / 2) return sys.writeAll(this.fd, bytes); // large: no copy
    this.buf.set(bytes, this.len);
    this.len += bytes.length;
  }

  flush(): void {
    if (this.len) sys.writeAll(this.fd, this.buf.subarray(0, this.len));
    this.len = 0;
  }
}

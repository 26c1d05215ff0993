// A tar codec: a streaming reader (ustar, GNU long names, PAX, base-256
// numbers) and a writer (ustar, with PAX records for what ustar cannot
// hold: long names, large ids or sizes, fractional times, xattrs).
// It parses; what an entry may do to a file system is decided elsewhere
// (src/image/unpack.ts).
import { ByteReader, TruncatedError } from "./bytes.ts";
import { decodeName, encodeName } from "./names.ts";

export type EntryType = "file" | "dir" | "symlink" | "hardlink" | "char" | "block" | "fifo";

export interface TarHeader {
  type: EntryType;
  /** The name as stored (PAX or GNU long name applied), not yet checked. */
  path: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch; PAX may give a fraction. */
  mtime: number;
  linkname: string;
  uname?: string;
  gname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, Uint8Array>;
}

export interface TarEntry {
  header: TarHeader;
  /** The file's bytes, each chunk shown to `seen` first; read it or not, the next entry skips what is left. */
  data(seen?: (chunk: Uint8Array) => void): AsyncGenerator<Uint8Array>;
  /**
   * All of the file's bytes at once, without copying, when the chunk at hand
   * holds them (shown to `seen` first); else undefined, and data() reads them.
   * Also undefined once data() has begun. Valid as data()'s chunks are.
   */
  readNow?(seen?: (chunk: Uint8Array) => void): Uint8Array | undefined;
  /** A file whose sha256 is wanted: the unpacker may take it on (src/image/unpack.ts). */
  digest?: FileDigest;
}

/** A file's sha256, when the unpacker hashes the file as it writes it. */
export interface FileDigest {
  /** Set, before the file's data is read, when the unpacker will. */
  byUnpacker?: boolean;
  /** Set once it has (hex), before unpack() returns. */
  sha256?: string;
}

export class TarError extends Error {}

const TYPES: Record<string, EntryType> = {
  "0": "file", "\0": "file", "7": "file", "1": "hardlink", "2": "symlink", "3": "char", "4": "block", "5": "dir", "6": "fifo",
};

const dec = new TextDecoder();
const enc = new TextEncoder();

/** A NUL-ended field as text; a file name's bytes as they are (src/image/names.ts). */
function str(b: Uint8Array, off: number, len: number, decode: (b: Uint8Array) => string = (v) => dec.decode(v)): string {
  let end = b.indexOf(0, off);
  if (end < 0 || end > off + len) end = off + len;
  return end === off ? "" : decode(b.subarray(off, end)); // most fields are short or empty: one view at most
}

/** An octal number field, or base-256 when the high bit of the first byte is set. */
function num(b: Uint8Array, off: number, len: number, what: string): number {
  if (b[off]! & 0x80) {
    if (b[off] === 0xff) throw new TarError(`negative ${what}`);
    let v = b[off]! & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[off + i]!;
    if (!Number.isSafeInteger(v)) throw new TarError(`${what} is too large`);
    return v;
  }
  const v = octal(b, off, len);
  if (v === undefined) throw new TarError(`${what} is not an octal number: "${str(b, off, len).trim()}"`);
  return v;
}

/**
 * An octal field read from its bytes, with no string made (a header has
 * eight): digits between optional spaces, ended by NUL or the field's end.
 * Undefined when it is anything else, or has no digits and empty is not allowed.
 */
function octal(b: Uint8Array, off: number, len: number, empty = true): number | undefined {
  const end = off + len;
  let i = off;
  while (i < end && b[i] === 0x20) i++;
  const first = i;
  let v = 0;
  for (; i < end && b[i]! >= 0x30 && b[i]! <= 0x37; i++) v = v * 8 + b[i]! - 0x30;
  if (i === first && !empty) return undefined;
  while (i < end && b[i] === 0x20) i++;
  return i === end || b[i] === 0 ? v : undefined;
}

/** The header's checksum: of its bytes as unsigned, or as signed as some old tars summed them; the field itself counts as spaces. */
function checksumOk(b: Uint8Array): boolean {
  const stored = octal(b, 148, 8, false);
  let sum = 8 * 32;
  for (let i = 0; i < 148; i++) sum += b[i]!;
  for (let i = 156; i < 512; i++) sum += b[i]!;
  if (stored === sum) return true;
  for (let i = 0; i < 512; i++) if (b[i]! > 127 && (i < 148 || i >= 156)) sum -= 256;
  return stored === sum;
}

/** The most keys a PAX record, or all global ones together, may hold: every entry looks through them. */
const MAX_PAX_KEYS = 1000;

/** PAX records: "LEN KEY=VALUE\n", LEN counting the whole record. */
function parsePax(data: Uint8Array): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  let off = 0;
  while (off < data.length) {
    const sp = data.indexOf(0x20, off);
    if (sp < 0) throw new TarError("bad PAX record");
    const len = Number(dec.decode(data.subarray(off, sp)));
    if (!Number.isSafeInteger(len) || len <= sp - off + 1 || off + len > data.length || data[off + len - 1] !== 0x0a) {
      throw new TarError("bad PAX record length");
    }
    const rec = data.subarray(sp + 1, off + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw new TarError("bad PAX record");
    out.set(decodeName(rec.subarray(0, eq)), rec.slice(eq + 1)); // a copy: the stream's buffers are reused (keys hold xattr names)
    if (out.size > MAX_PAX_KEYS) throw new TarError(`a PAX record with more than ${MAX_PAX_KEYS} keys`);
    off += len;
  }
  return out;
}

const MAX_META = 1 << 20; // PAX and GNU long-name records larger than this are refused

/**
 * An entry's header from its ustar block and the extended records before it
 * (ext is read only). Apart from TarReader's loops: the JIT compiles small
 * functions sooner than one large one.
 */
function entryHeader(h: Uint8Array, type: EntryType, size: number, ext: Map<string, Uint8Array>, longName?: string, longLink?: string): TarHeader {
  const text = ext.size ? (k: string, decode = (v: Uint8Array) => dec.decode(v)) => (ext.has(k) ? decode(ext.get(k)!) : undefined) : () => undefined;
  // GNU tar's PAX sparse files (--sparse --format=posix): their data is a map, then the pieces; as its 'S' entries, refused
  if (ext.size && (ext.has("GNU.sparse.major") || ext.has("GNU.sparse.map") || ext.has("GNU.sparse.size"))) {
    throw new TarError(`"${text("GNU.sparse.name", decodeName) ?? text("path", decodeName) ?? str(h, 0, 100, decodeName)}" is a sparse file, which is not supported: archive it again without --sparse`);
  }
  const number = (k: string, fallback: number) => {
    const t = text(k);
    if (t === undefined) return fallback;
    const v = Number(t);
    if (!Number.isFinite(v)) throw new TarError(`PAX ${k} is not a number: "${t}"`);
    return v;
  };
  // POSIX's "ustar\0" has a name prefix; GNU's "ustar  " uses that room for other things
  const ustar = h[257] === 0x75 && h[258] === 0x73 && h[259] === 0x74 && h[260] === 0x61 && h[261] === 0x72 && h[262] === 0;
  const prefix = ustar ? str(h, 345, 155, decodeName) : "";
  const path = text("path", decodeName) ?? longName ?? (prefix ? `${prefix}/${str(h, 0, 100, decodeName)}` : str(h, 0, 100, decodeName));
  const header: TarHeader = {
    type,
    path: type === "dir" ? path.replace(/(.)\/+$/, "$1") : path,
    mode: num(h, 100, 8, "mode") & 0o7777,
    uid: number("uid", num(h, 108, 8, "uid")),
    gid: number("gid", num(h, 116, 8, "gid")),
    size: type === "file" ? number("size", size) : 0,
    mtime: number("mtime", num(h, 136, 12, "mtime")),
    linkname: text("linkpath", decodeName) ?? longLink ?? str(h, 157, 100, decodeName),
    uname: text("uname") ?? (str(h, 265, 32) || undefined),
    gname: text("gname") ?? (str(h, 297, 32) || undefined),
  };
  if (header.path.includes("\0") || header.linkname.includes("\0")) throw new TarError(`a name with a NUL in it: "${header.path.replace(/\0/g, "\\0").slice(0, 80)}"`);
  if (type === "char" || type === "block") {
    header.devmajor = num(h, 329, 8, "devmajor");
    header.devminor = num(h, 337, 8, "devminor");
  }
  for (const [k, v] of ext) {
    const name = k.startsWith("SCHILY.xattr.") ? k.slice(13) : undefined;
    if (name) (header.xattrs ??= {})[name] = v;
  }
  return header;
}

/**
 * Entries one at a time: the entry itself when its header is in the chunk at
 * hand, which is nearly always, and a promise only when the stream must be
 * read first; null at the end. A consumer that stops early calls close().
 * (With an async generator per stage, about 15 promise turns an entry, the
 * minbase bundle's import took 562 ms instead of 526: medians of 30.)
 */
export interface EntrySource {
  nextEntry(): TarEntry | null | Promise<TarEntry | null>;
  close(): Promise<void>;
}

/** Entries from either kind of source. */
export type Entries = EntrySource | AsyncIterable<TarEntry>;

/** An EntrySource over an iterable of entries (tests, and sources that are generators). */
export function entrySource(entries: Entries): EntrySource {
  if ("nextEntry" in entries) return entries;
  const it = entries[Symbol.asyncIterator]();
  return {
    nextEntry: () => it.next().then((r) => (r.done ? null : r.value)),
    close: async () => void (await it.return?.()),
  };
}

/** Read a tar stream entry by entry; a stream (not a ByteReader, which stays the caller's) ends with it. */
export function readTar(source: AsyncIterable<Uint8Array> | ByteReader): TarReader {
  return source instanceof ByteReader ? new TarReader(source, false) : new TarReader(new ByteReader(source), true);
}

/** The entry handed out last. */
interface Current {
  /** Its data size, read or not. */
  size: number;
  /** The reader's position at the end of its data. */
  end: number;
  /** Its data, as a stream, once asked for. */
  body?: AsyncGenerator<Uint8Array>;
  /** Its data was read at once (readNow). */
  taken?: boolean;
}

export class TarReader implements EntrySource, AsyncIterable<TarEntry> {
  private global = new Map<string, Uint8Array>();
  private pax?: Map<string, Uint8Array>;
  private longName?: string;
  private longLink?: string;
  private cur?: Current;
  private ended = false;

  constructor(
    private readonly r: ByteReader,
    /** The reader is this one's to close. */
    private readonly owned: boolean,
  ) {}

  nextEntry(): TarEntry | null | Promise<TarEntry | null> {
    if (this.ended) return null;
    try {
      return this.now() ?? this.later();
    } catch (e) {
      return this.close().then(() => Promise.reject(e));
    }
  }

  async close(): Promise<void> {
    this.ended = true;
    if (this.owned) await this.r.close(); // closing twice is harmless
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<TarEntry> {
    try {
      for (;;) {
        const next = this.nextEntry();
        const entry = next instanceof Promise ? await next : next;
        if (!entry) return;
        yield entry;
      }
    } finally {
      await this.close();
    }
  }

  /**
   * The next entry without waiting, or undefined (nothing read) when it is
   * not a plain header in the chunk at hand: the rest of the entry before
   * unread, an extended header, the end, or anything wrong go to later().
   */
  private now(): TarEntry | undefined {
    const cur = this.cur;
    if (cur?.body) return undefined; // a stream begun: later() drains it
    const skip = cur ? cur.end - this.r.position + pad(cur.size) : 0;
    const view = this.r.peekNow();
    if (!view || view.length < skip + 512) return undefined;
    const h = view.subarray(skip, skip + 512);
    const type = TYPES[String.fromCharCode(h[156]!)];
    if (!type || h[0] === 0 || !checksumOk(h)) return undefined;
    const size = num(h, 124, 12, "size");
    this.r.skipNow(skip + 512);
    this.cur = undefined;
    return this.entry(h, type, size);
  }

  private async later(): Promise<TarEntry | null> {
    const r = this.r;
    const meta = async (size: number, what: string): Promise<Uint8Array> => {
      if (size > MAX_META) throw new TarError(`${what} record of ${size} bytes is too large`);
      // with its padding in one read: a view of the chunk at hand stays valid only while no more are read
      const data = (await r.readExact(size + pad(size))) ?? new Uint8Array(0);
      if (data.length < size) throw new TruncatedError(`the stream ends inside a ${what} record`);
      return data.subarray(0, size);
    };
    try {
      for (;;) {
        const cur = this.cur;
        if (cur) {
          // pass over what the caller did not read, and the padding
          if (cur.body) for await (const _ of cur.body) void _;
          await r.skip(cur.end - r.position + pad(cur.size)); // what a stream closed early left too
          this.cur = undefined;
        }
        const at = r.position;
        const h = await r.readExact(512).catch((e) => {
          // shorter than one header: some other file, not a cut tar
          throw at === 0 && e instanceof TruncatedError ? new TarError(`not a tar archive (${r.position} bytes, less than one 512-byte header)`) : e;
        });
        if (!h || h.every((c) => c === 0)) {
          // EOF without end-of-archive blocks is tolerated, as GNU tar does
          if (this.pax || this.longName || this.longLink) {
            throw h ? new TarError("an extended header is followed by the end of the archive") : new TruncatedError("the stream ends after an extended header");
          }
          await this.close();
          return null;
        }
        if (!checksumOk(h)) throw new TarError(`bad header checksum at byte ${r.position - 512}: not a tar archive, or a corrupt one`);
        const flag = String.fromCharCode(h[156]!);
        const size = num(h, 124, 12, "size");
        if (flag === "x") {
          this.pax = parsePax(await meta(size, "PAX"));
          continue;
        }
        if (flag === "g") {
          this.global = new Map([...this.global, ...parsePax(await meta(size, "PAX global"))]);
          if (this.global.size > MAX_PAX_KEYS) throw new TarError(`PAX global records with more than ${MAX_PAX_KEYS} keys`);
          continue;
        }
        if (flag === "L" || flag === "K") {
          const name = str(await meta(size, "GNU long name"), 0, size, decodeName);
          if (flag === "L") this.longName = name;
          else this.longLink = name;
          continue;
        }
        if (flag === "V") {
          await r.skip(size + pad(size));
          continue;
        }
        const type = TYPES[flag];
        if (!type) throw new TarError(`unsupported tar entry type '${flag === "\0" ? "\\0" : flag}' (sparse or multi-volume archives are not supported)`);
        return this.entry(h, type, size);
      }
    } catch (e) {
      await this.close();
      throw e;
    }
  }

  /** The entry of a ustar header, with the extended records read before it. */
  private entry(h: Uint8Array, type: EntryType, size: number): TarEntry {
    const header = entryHeader(h, type, size, this.pax ? new Map([...this.global, ...this.pax]) : this.global, this.longName, this.longLink);
    this.pax = undefined;
    this.longName = this.longLink = undefined;
    // a hard link or a directory carries no data even if the header says so
    const flag = h[156];
    const dataSize = type === "file" ? header.size : flag === 0x31 || flag === 0x35 ? 0 : size;
    if (!Number.isSafeInteger(dataSize) || dataSize < 0) throw new TarError(`bad size for ${header.path}`);
    const cur: Current = { size: dataSize, end: this.r.position + dataSize };
    this.cur = cur;
    const r = this.r;
    // an entry's data is there only until the next entry is asked for: after that, the bytes read would be another's
    const current = () => this.cur === cur;
    return {
      header,
      data(seen) {
        if (cur.body || cur.taken) throw new Error("tar entry data read twice");
        if (!current()) throw new Error("tar entry data read after the next entry");
        return (cur.body = r.stream(dataSize, seen));
      },
      readNow(seen) {
        if (cur.body || cur.taken || !current()) return undefined;
        const bytes = r.readNow(dataSize);
        if (bytes) {
          cur.taken = true;
          seen?.(bytes);
        }
        return bytes;
      },
    };
  }
}

const pad = (n: number) => (512 - (n % 512)) % 512;

// --- writing ------------------------------------------------------------------

const FLAG: Record<EntryType, number> = { file: 0x30, hardlink: 0x31, symlink: 0x32, char: 0x33, block: 0x34, dir: 0x35, fifo: 0x36 };
const PAX_FLAG = 0x78; // 'x'
const MAGIC = enc.encode("ustar\x0000"); // magic and version, at 257
const PAX_NAME = enc.encode("PaxHeader");
const NONE = new Uint8Array(0);

function putStr(b: Uint8Array, off: number, len: number, s: string): boolean {
  const bytes = enc.encode(s);
  if (bytes.length > len) return false;
  b.set(bytes, off);
  return true;
}

/** v in octal, zero-padded to len - 1 digits before a NUL; false (and nothing written) when it does not fit. */
function putOctal(b: Uint8Array, off: number, len: number, v: number): boolean {
  v = Math.floor(v);
  if (v < 0 || v >= 8 ** (len - 1)) return false;
  for (let i = off + len - 2; i >= off; i--) {
    b[i] = 0x30 + (v % 8);
    v = Math.floor(v / 8);
  }
  return true;
}

function paxRecord(key: string, value: Uint8Array | string): Uint8Array {
  const v = typeof value === "string" ? enc.encode(value) : value;
  const k = encodeName(key); // an xattr's name is bytes too
  const base = k.length + v.length + 3; // space, '=', '\n'
  let len = base + String(base).length;
  if (String(len).length !== String(base).length) len = base + String(len).length;
  const out = new Uint8Array(len);
  const head = enc.encode(`${len} `);
  out.set(head, 0);
  out.set(k, head.length);
  out[head.length + k.length] = 0x3d;
  out.set(v, head.length + k.length + 1);
  out[len - 1] = 0x0a;
  return out;
}

/** A ustar header block; a name or link longer than its field is left empty (a PAX record holds it). */
function block(h: TarHeader, name: Uint8Array, flag: number, size: number, link: Uint8Array): Uint8Array {
  // byte by byte: through strings, this ran slower and took the JIT ~75 ms of CPU to compile
  const b = new Uint8Array(512);
  if (name.length <= 100) b.set(name, 0);
  putOctal(b, 100, 8, h.mode & 0o7777);
  putOctal(b, 108, 8, Math.min(h.uid, 0o7777777));
  putOctal(b, 116, 8, Math.min(h.gid, 0o7777777));
  putOctal(b, 124, 12, size);
  putOctal(b, 136, 12, Math.max(0, Math.min(Math.floor(h.mtime), 0o77777777777)));
  b[156] = flag;
  if (link.length <= 100) b.set(link, 157);
  b.set(MAGIC, 257);
  if (h.uname) putStr(b, 265, 32, h.uname);
  if (h.gname) putStr(b, 297, 32, h.gname);
  putOctal(b, 329, 8, h.devmajor ?? 0);
  putOctal(b, 337, 8, h.devminor ?? 0);
  b.fill(32, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += b[i]!;
  putOctal(b, 148, 7, sum); // six digits, a NUL, and the space already there
  b[154] = 0;
  return b;
}

/** The header blocks for one entry (a PAX header first when ustar cannot hold it). */
export function encodeHeader(h: TarHeader): Uint8Array {
  const name = h.type === "dir" && !h.path.endsWith("/") ? `${h.path}/` : h.path;
  const nameBytes = encodeName(name);
  const link = h.linkname ? encodeName(h.linkname) : NONE;
  const size = h.type === "file" ? h.size : 0;
  const records: Uint8Array[] = [];
  const long = nameBytes.length > 100;
  if (long) records.push(paxRecord("path", nameBytes));
  if (link.length > 100) records.push(paxRecord("linkpath", link));
  // names not in UTF-8 are raw bytes in PAX, as GNU tar writes them (without hdrcharset, a keyword GNU tar warns of)
  if (size > 0o77777777777) records.push(paxRecord("size", String(size)));
  if (h.uid > 0o7777777) records.push(paxRecord("uid", String(h.uid)));
  if (h.gid > 0o7777777) records.push(paxRecord("gid", String(h.gid)));
  if (!Number.isInteger(h.mtime) || h.mtime < 0 || h.mtime > 0o77777777777) records.push(paxRecord("mtime", String(h.mtime)));
  for (const [k, v] of Object.entries(h.xattrs ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) {
    records.push(paxRecord(`SCHILY.xattr.${k}`, v));
  }
  const main = block(h, long ? encodeName(name.slice(-99)) : nameBytes, FLAG[h.type], size, link);
  if (records.length === 0) return main;
  const paxData = new Uint8Array(records.reduce((n, r) => n + r.length, 0));
  records.reduce((off, r) => (paxData.set(r, off), off + r.length), 0);
  const paxHeader = block({ ...h, mode: 0o644, uname: "", gname: "" }, PAX_NAME, PAX_FLAG, paxData.length, NONE);
  const out = new Uint8Array(512 + paxData.length + pad(paxData.length) + 512);
  out.set(paxHeader, 0);
  out.set(paxData, 512);
  out.set(main, 512 + paxData.length + pad(paxData.length));
  return out;
}

const ZEROS = new Uint8Array(512);

/** Zero bytes to the next 512-byte boundary after n bytes of data (shared: never write to it). */
export function padding(n: number): Uint8Array {
  return ZEROS.subarray(0, pad(n));
}

/** Two zero blocks: the end of an archive. */
export const END_OF_ARCHIVE = new Uint8Array(1024);

// Compressed input, told apart by content: gzip members or zstd frames, one
// after another.
//
// zstd frames that state their size (bunker's bundles are made of 8 MiB
// ones) are cut apart from their headers and decoded, one by one, by the
// host's libzstd into a few reused buffers, on a thread of their own while
// the reader reads the frame before. Measured on this project's VM
// for a 121 MB tar: 84 ms, against 250-480 ms for Bun's zstd, whose every
// call returns fresh memory (page faults cost more than decoding here).
// Everything else, and hosts without libzstd, stream through node:zlib.
import { ZSTD_WORKER } from "../bundle/frames.ts";
import { openLibzstd } from "../bundle/libzstd.ts";
import type { FromDecoder, ToDecoder } from "../bundle/zstd-worker.ts";
import { BunkerError } from "../errors.ts";
import * as sys from "../linux/sys.ts";
import { ArchiveError } from "./unpack.ts";

export type Compression = "none" | "gzip" | "zstd";

export function sniff(head: Uint8Array): Compression | "xz" | "bzip2" {
  if (head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return "zstd";
  // a skippable frame first, as pzstd writes one before each frame (0x184D2A50-5F, little-endian)
  if ((head[0]! & 0xf0) === 0x50 && head[1] === 0x2a && head[2] === 0x4d && head[3] === 0x18) return "zstd";
  if (head[0] === 0xfd && head[1] === 0x37 && head[2] === 0x7a && head[3] === 0x58 && head[4] === 0x5a) return "xz";
  if (head[0] === 0x42 && head[1] === 0x5a && head[2] === 0x68) return "bzip2";
  return "none";
}

/**
 * Decompress a stream. An output chunk is valid until two more have been
 * read (the buffers are reused): copy what is kept. A peek, which reads
 * only the start, decodes zstd as far as it reads, not a whole frame (the
 * pass that reads everything would decode that frame again).
 */
export async function* decompress(source: AsyncIterable<Uint8Array>, how: Compression, peek = false): AsyncGenerator<Uint8Array> {
  if (how === "none") return yield* source;
  const lib = how === "zstd" ? hostZstd() : undefined;
  if (lib && peek) return yield* zstdStream(source, lib);
  if (lib) return yield* zstdFrames(source[Symbol.asyncIterator](), lib.frame);
  yield* streaming(source, how);
}

/** The largest frame decoded whole: bigger ones (or ones of unknown size) stream. */
export const MAX_FRAME = 8 << 20; // a bundle's frames (src/bundle/frames.ts)

/** A frame decoder into memory the caller gives. */
type FrameDecoder = (frame: Uint8Array, out: Uint8Array) => number;

/** The host's libzstd: whole frames, or a stream in steps (`step`: in and out are each [pointer, size, position]). */
interface HostZstd {
  frame: FrameDecoder;
  stream(): { step(io: BigUint64Array): number; free(): void };
}

let host: HostZstd | null | undefined;
let hostAllowed = true;

/** For tests: decode without the host's libzstd, as on a host that has none. */
export function useHostZstd(on: boolean): void {
  hostAllowed = on;
}

/** The host's libzstd (libzstd1: dpkg and apt depend on it), or null. */
function hostZstd(): HostZstd | null {
  if (!hostAllowed) return null;
  if (host !== undefined) return host;
  host = null;
  try {
    const ffi = require("bun:ffi") as typeof import("bun:ffi");
    const { ptr } = ffi;
    const z = openLibzstd(ffi);
    const dctx = z.ZSTD_createDCtx();
    if (!dctx) return null;
    const checked = (r: number | bigint) => {
      if (z.ZSTD_isError(r)) throw new ArchiveError(`the zstd stream is corrupt: ${z.ZSTD_getErrorName(r)}`);
      return Number(r);
    };
    host = {
      frame: (frame, out) => checked(z.ZSTD_decompressDCtx(dctx, ptr(out), out.length, ptr(frame), frame.length)),
      stream() {
        const own = z.ZSTD_createDCtx();
        if (!own) throw new BunkerError("libzstd could not make a decoder (out of memory?)");
        return {
          step: (io) => checked(z.ZSTD_decompressStream(own, ptr(io, 24), ptr(io))),
          free: () => void z.ZSTD_freeDCtx(own),
        };
      },
    };
  } catch {
    // no libzstd here: node:zlib it is
  }
  return host;
}

/**
 * A zstd stream through libzstd's streaming decoder, in pieces of at most
 * 64 KiB, decoded only as far as the reader reads (into three reused
 * buffers: a piece stays valid until two more have been read).
 */
async function* zstdStream(source: AsyncIterable<Uint8Array>, lib: HostZstd): AsyncGenerator<Uint8Array> {
  const { ptr } = require("bun:ffi") as typeof import("bun:ffi");
  const outs = [0, 1, 2].map(() => new Uint8Array(64 << 10));
  const io = new BigUint64Array(6); // ZSTD_inBuffer, then ZSTD_outBuffer: pointer, size, position
  const z = lib.stream();
  let more = 0; // libzstd's hint: 0 between frames, where a stream may end
  let n = 0;
  try {
    for await (const chunk of source) {
      if (!chunk.length) continue;
      [io[0], io[1], io[2]] = [BigInt(ptr(chunk)), BigInt(chunk.length), 0n];
      for (let full = true; io[2] < io[1] || full; ) {
        const out = outs[n++ % 3]!;
        [io[3], io[4], io[5]] = [BigInt(ptr(out)), BigInt(out.length), 0n];
        more = z.step(io);
        const got = Number(io[5]);
        full = got === out.length; // it may hold more output for the input it has read
        if (got) yield out.subarray(0, got);
      }
    }
    if (more !== 0) throw new ArchiveError("the zstd stream is truncated");
  } finally {
    z.free();
  }
}

export type FrameCut =
  | { kind: "frame"; length: number; contentSize: number }
  | { kind: "skip"; length: number }
  | { kind: "more" } // the frame does not end within the bytes given
  | { kind: "stream" }; // no stated size, too large, or a dictionary: leave it to a streaming decoder

const FCS_BYTES = [0, 2, 4, 8];
const DICT_BYTES = [0, 1, 2, 4];

type FrameHeader =
  | { skippable: true; length: number } // the whole skippable frame
  | {
      skippable: false;
      length: number;
      contentSize?: number;
      checksum: boolean;
      dictionary: boolean;
    };

/** A frame header at the start of b (RFC 8878 §3.1.1), or how many bytes it needs when b ends within it. */
function frameHeader(b: Uint8Array): FrameHeader | number {
  if (b.length < 5) return 5;
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  const magic = dv.getUint32(0, true);
  if ((magic & 0xfffffff0) === 0x184d2a50) return b.length < 8 ? 8 : { skippable: true, length: 8 + dv.getUint32(4, true) };
  if (magic !== 0xfd2fb528) throw new ArchiveError("the zstd stream is corrupt: a frame does not start with zstd's magic number");
  const fhd = b[4]!;
  if (fhd & 0x08) throw new ArchiveError("the zstd stream is corrupt: a reserved bit is set in a frame header");
  const single = (fhd >> 5) & 1;
  const fcsBytes = fhd >> 6 === 0 ? single : FCS_BYTES[fhd >> 6]!;
  const at = 5 + (single ? 0 : 1) + DICT_BYTES[fhd & 3]!;
  const length = at + fcsBytes;
  if (b.length < length) return length;
  const contentSize =
    fcsBytes === 0
      ? undefined
      : fcsBytes === 1
        ? b[at]!
        : fcsBytes === 2
          ? dv.getUint16(at, true) + 256
          : fcsBytes === 4
            ? dv.getUint32(at, true)
            : Number(dv.getBigUint64(at, true));
  return {
    skippable: false,
    length,
    contentSize,
    checksum: ((fhd >> 2) & 1) === 1,
    dictionary: (fhd & 3) !== 0,
  };
}

/** A block header's content length (what follows it) and whether it ends the frame. */
function blockHeader(b0: number, b1: number, b2: number): { length: number; last: boolean } {
  const bh = b0 | (b1 << 8) | (b2 << 16);
  const type = (bh >> 1) & 3;
  if (type === 3) throw new ArchiveError("the zstd stream is corrupt: a block of the reserved type");
  return { length: type === 1 ? 1 : bh >>> 3, last: (bh & 1) === 1 };
}

/**
 * Where the zstd frame (or skippable frame) at the start of b ends, found
 * from its header and block headers alone, without decoding.
 */
export function cutFrame(b: Uint8Array): FrameCut {
  const h = frameHeader(b);
  if (typeof h === "number") return { kind: "more" };
  if (h.skippable) return { kind: "skip", length: h.length };
  if (h.contentSize === undefined || h.contentSize > MAX_FRAME || h.dictionary) return { kind: "stream" };
  let off = h.length;
  for (;;) {
    if (b.length < off + 3) return { kind: "more" };
    const block = blockHeader(b[off]!, b[off + 1]!, b[off + 2]!);
    off += 3 + block.length;
    if (block.last) break;
    if (off > MAX_FRAME + (1 << 20)) return { kind: "stream" }; // longer than any honest frame of its size: memory stays bounded
  }
  off += h.checksum ? 4 : 0;
  return b.length < off ? { kind: "more" } : { kind: "frame", length: off, contentSize: h.contentSize };
}

/**
 * Follows frame and block headers as a zstd stream goes by, so its end can
 * be checked: a stream cut at a block boundary decodes without complaint.
 */
export class FrameWalker {
  private readonly head = new Uint8Array(18);
  private have = 0;
  private want = 5;
  private skip = 0;
  private inFrame = false;
  private checksum = false;

  feed(b: Uint8Array): void {
    for (let off = 0; off < b.length;) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, b.length - off);
        this.skip -= n;
        off += n;
        continue;
      }
      const n = Math.min(this.want - this.have, b.length - off);
      this.head.set(b.subarray(off, off + n), this.have);
      this.have += n;
      off += n;
      if (this.have === this.want) this.step();
    }
  }

  /** True between frames: where a whole stream ends. */
  get atBoundary(): boolean {
    return !this.inFrame && this.have === 0 && this.skip === 0;
  }

  private step(): void {
    const got = this.head.subarray(0, this.have);
    if (this.inFrame) {
      const block = blockHeader(got[0]!, got[1]!, got[2]!);
      this.skip = block.length + (block.last && this.checksum ? 4 : 0);
      if (block.last) [this.inFrame, this.want] = [false, 5];
      this.have = 0;
      return;
    }
    const h = frameHeader(got);
    if (typeof h === "number") return void (this.want = h);
    [this.have, this.want] = [0, h.skippable ? 5 : 3];
    if (h.skippable) this.skip = h.length - got.length;
    else [this.inFrame, this.checksum] = [true, h.checksum];
  }
}

/**
 * Cut frames from the input and decode each into the next of a few reused
 * buffers (each first touch of a huge page costs the kernel a 2 MiB clear:
 * two fewer 8 MiB buffers took ~60 ms off an import). With two cores or
 * more, frames after the first decode on a thread of their own, each while
 * the reader reads the one before (three buffers: the chunk being read, the
 * one before it, which stays valid, and the next); the first decodes here,
 * so a reader that peeks at it starts no thread. A frame on the thread is
 * decoded where it was cut: the cutting goes on in a second buffer, and
 * comes back to the first once that frame is decoded. At the first frame that
 * cannot be cut, the rest of the input (from that frame on) goes through a
 * streaming decoder. The buffers go back (sys.giveBack) when the stream
 * ends; its reader holds no chunk by then (ByteReader reads a chunk only
 * once it has used up the last).
 */
async function* zstdFrames(input: AsyncIterator<Uint8Array>, decode: FrameDecoder): AsyncGenerator<Uint8Array> {
  // huge pages: on a VM where a page fault costs ~20 µs, faulting in 40 MiB took longer than decoding it
  const borrowed = [sys.borrowBuffer(MAX_FRAME + (1 << 20))];
  let buf = borrowed[0]!; // holds a whole frame (grows for a larger one, which streams anyway)
  let other: Uint8Array | undefined; // the second buffer to cut in, made at the first frame on the thread
  let start = 0;
  let end = 0;
  let done = false;
  const threaded = threadAllowed && (navigator.hardwareConcurrency ?? 1) >= 2;
  const slots = threaded ? 3 : 2;
  const outs: Uint8Array[] = []; // made as needed: a reader that stops after one frame needs one
  let ahead: Decoding | undefined; // the frame on the thread
  const more = async () => {
    const r = await input.next();
    if (r.done) return void (done = true);
    const chunk = r.value;
    if (end + chunk.length > buf.length) {
      // keep what is not cut yet at the front; grow when one frame is larger than the buffer
      const keep = end - start;
      const next = keep + chunk.length > buf.length ? shared(Math.max(buf.length * 2, keep + chunk.length)) : buf;
      if (next === buf) buf.copyWithin(0, start, end);
      else next.set(buf.subarray(start, end));
      [buf, start, end] = [next, 0, keep];
    }
    buf.set(chunk, end);
    end += chunk.length;
  };
  try {
    for (let n = 0; ;) {
      const cut = start < end ? cutFrame(buf.subarray(start, end)) : { kind: "more" as const };
      if (cut.kind === "frame") {
        const slot = n % slots;
        const out = (outs[slot] ??= sys.borrowBuffer(MAX_FRAME));
        const frame = buf.subarray(start, start + cut.length);
        start += cut.length;
        if (n++ === 0 || !threaded) {
          yield* decoded({ out, size: decode(frame, out), contentSize: cut.contentSize });
          continue;
        }
        const before = ahead;
        ahead = { out, size: (thread ??= new DecodeThread()).decode(frame, out), contentSize: cut.contentSize };
        if (before) yield* decoded(before);
        // the frame before is decoded, so the buffer it was cut from is free: the rest is cut there, as this one decodes
        if (!other) borrowed.push((other = sys.borrowBuffer(MAX_FRAME + (1 << 20))));
        const keep = end - start;
        const next = other.length >= keep ? other : shared(keep);
        next.set(buf.subarray(start, end));
        [other, buf, start, end] = [buf, next, 0, keep];
      } else if (cut.kind === "skip" && end - start >= cut.length) {
        start += cut.length;
      } else if (cut.kind === "stream") {
        if (ahead) yield* decoded(ahead);
        const rest = buf.slice(start, end);
        start = end;
        yield* streaming(
          (async function* () {
            yield rest;
            if (!done) yield* { [Symbol.asyncIterator]: () => input };
          })(),
          "zstd",
        );
        return;
      } else if (done) {
        if (start < end) throw new ArchiveError("the zstd stream is truncated");
        if (ahead) yield* decoded(ahead);
        return;
      } else await more();
    }
  } finally {
    if (!done) await input.return?.();
    try {
      await ahead?.size; // the thread writes into a buffer until then
    } catch {}
    for (const b of [...borrowed, ...outs]) sys.giveBack(b);
  }
}

/** Memory a frame can be posted to the thread from without a copy (of a plain buffer, postMessage copies all of it). */
const shared = (size: number) => new Uint8Array(new SharedArrayBuffer(size));

/** A frame being decoded (or decoded) into out. */
type Decoding = { out: Uint8Array; size: number | Promise<number>; contentSize: number };

/** A decoded frame's bytes, once its size is checked against its header. */
async function* decoded(d: Decoding): AsyncGenerator<Uint8Array> {
  const got = await d.size;
  if (got !== d.contentSize) throw new ArchiveError(`the zstd stream is corrupt: a frame holds ${got} bytes where its header says ${d.contentSize}`);
  if (got) yield d.out.subarray(0, got);
}

let threadAllowed = true;

/** For tests: decode every frame on the calling thread, as on a host with one core. */
export function useDecodeThread(on: boolean): void {
  threadAllowed = on;
}

let thread: DecodeThread | undefined;

/** A zstd decompression thread (src/bundle/zstd-worker.ts): one per process, made at the first stream's second frame. */
class DecodeThread {
  private readonly worker = new Worker(ZSTD_WORKER);
  /** Frames given to it, in order: it answers each in turn. */
  private readonly waiting: { resolve: (size: number) => void; reject: (e: Error) => void }[] = [];
  private failed?: Error;

  constructor() {
    this.worker.unref(); // it keeps the process alive only while a frame is on it
    this.worker.onmessage = (e: MessageEvent<FromDecoder>) => {
      const m = e.data;
      const job = this.waiting.shift()!;
      if (!this.waiting.length) this.worker.unref();
      if ("size" in m) job.resolve(m.size);
      else if ("corrupt" in m) job.reject(new ArchiveError(`the zstd stream is corrupt: ${m.corrupt}`));
      else job.reject(new BunkerError(`the decompression thread failed: ${m.error}`));
    };
    this.worker.onerror = (e) => {
      this.failed = new BunkerError(`the decompression thread failed: ${e.message}`);
      for (const job of this.waiting.splice(0)) job.reject(this.failed);
    };
  }

  /** One frame into out (both views of shared memory, left alone until this settles): its decoded size. */
  decode(frame: Uint8Array, out: Uint8Array): Promise<number> {
    if (this.failed) return Promise.reject(this.failed);
    if (!this.waiting.length) this.worker.ref();
    const size = new Promise<number>((resolve, reject) => this.waiting.push({ resolve, reject }));
    size.catch(() => {}); // it may fail while the reader is busy with the frame before: seen when awaited
    this.worker.postMessage({ frame, out } satisfies ToDecoder);
    return size;
  }
}

/** One decoder for the whole stream (node:zlib's, native, off the main thread; its chunks are fresh). */
async function* streaming(source: AsyncIterable<Uint8Array>, how: "gzip" | "zstd"): AsyncGenerator<Uint8Array> {
  const zlib = await import("node:zlib");
  const walker = how === "zstd" ? new FrameWalker() : undefined; // Bun's zstd decoder does not report a cut
  const z = how === "gzip" ? zlib.createGunzip({ chunkSize: 1 << 20 }) : zlib.createZstdDecompress({ chunkSize: 1 << 20 });
  // wait for room, or for the end: a destroyed stream never drains
  const room = () =>
    new Promise<void>((resolve) => {
      const done = () => (z.off("drain", done), z.off("close", done), resolve());
      z.on("drain", done).on("close", done);
    });
  const feed = (async () => {
    try {
      for await (const chunk of source) {
        if (z.destroyed) return;
        walker?.feed(chunk);
        if (!z.write(chunk.slice())) await room(); // a copy: the stream holds on to what it is given, and sources reuse buffers
      }
      z.end();
    } catch (e) {
      z.destroy(e as Error);
    }
  })();
  try {
    for await (const chunk of z as AsyncIterable<Buffer>) yield new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length);
    await feed;
    if (walker && !walker.atBoundary) throw new ArchiveError("the zstd stream is truncated");
  } catch (e) {
    if (e instanceof ArchiveError) throw e;
    throw new ArchiveError(`the ${how} stream is corrupt or truncated: ${(e as Error).message}`);
  } finally {
    z.destroy(); // a reader that stops early, or an error, must not leave the feeder waiting
    await feed;
  }
}

// Writing a byte stream as independent compressed frames (zstd frames or
// gzip members), several at a time on the thread pool, in order, to a file
// that appears whole or not at all.
import { BunkerError } from "../errors.ts";
import * as sys from "../linux/sys.ts";

export type Codec = "zstd" | "gzip";

/**
 * 8 MiB of tar per frame: measured on a Debian minbase tar at zstd level 3,
 * 4 MiB frames give a ratio of 2.91, 8 MiB 2.96 and 16 MiB 2.98 (one zstd
 * stream: 2.93), and frames must stay small enough to spread over cores.
 */
const FRAME = 8 << 20;

export class FrameWriter {
  private buf: Uint8Array = Buffer.allocUnsafe(FRAME);
  /** Frame buffers whose compression is done: reused, since touching fresh memory costs page faults. */
  private readonly free: Uint8Array[] = [];
  private len = 0;
  private readonly inflight: Promise<Uint8Array>[] = [];
  /** Written under this name, renamed to the output by close(). */
  private readonly partial: string;
  private fd = -1;
  /** Bytes in and out, for progress and the summary. */
  raw = 0;
  compressed = 0;

  constructor(
    readonly output: string,
    private readonly codec: Codec,
    private readonly parallel = Math.max(2, navigator.hardwareConcurrency ?? 2),
  ) {
    this.partial = `${output}.${process.pid}.partial`;
    this.fd = this.io(() => sys.openWrite(this.partial));
    for (const s of Object.keys(SIGNALS)) process.on(s, this.interrupted);
  }

  /** Interrupted (^C, a kill): the partial file goes, and the exit status says which signal, as a shell's would. */
  private readonly interrupted = (signal: string) => {
    this.abort();
    process.exit(128 + SIGNALS[signal]!);
  };

  /** The output file's system calls: a failure names the file as the user did, and what to do. */
  private io<T>(f: () => T): T {
    try {
      return f();
    } catch (e) {
      if (!(e instanceof sys.SysError)) throw e;
      const hint = HINTS[e.code];
      throw new BunkerError(`cannot write ${this.output}: ${e.reason}${hint ? ` (${hint})` : ""}`);
    }
  }

  async write(bytes: Uint8Array): Promise<void> {
    for (let off = 0; off < bytes.length; ) {
      const take = Math.min(FRAME - this.len, bytes.length - off);
      this.buf.set(bytes.subarray(off, off + take), this.len);
      off += take;
      await this.advance(take);
    }
  }

  /** The rest of the current frame, to fill in place (then advance() past what was put there). */
  room(): Uint8Array {
    return this.buf.subarray(this.len);
  }

  /** n more bytes of the frame are filled; a promise only when that filled it. */
  advance(n: number): Promise<void> | undefined {
    this.raw += n;
    this.len += n;
    return this.len === FRAME ? this.frame() : undefined;
  }

  private async frame(): Promise<void> {
    const full = this.buf;
    const data = full.subarray(0, this.len);
    this.buf = this.free.pop() ?? Buffer.allocUnsafe(FRAME); // filled before it is read: no need to zero it
    this.len = 0;
    this.inflight.push(compress(data, this.codec).finally(() => this.free.push(full)));
    // memory stays bounded: at most `parallel` frames in the air
    while (this.inflight.length >= this.parallel) this.out(await this.inflight.shift()!);
  }

  private out(bytes: Uint8Array): void {
    this.io(() => sys.writeAll(this.fd, bytes));
    this.compressed += bytes.length;
  }

  /** Flush, sync, and put the file in place under its name. */
  async close(): Promise<void> {
    if (this.len) await this.frame();
    while (this.inflight.length) this.out(await this.inflight.shift()!);
    this.io(() => {
      sys.fsync(this.fd);
      sys.close(this.fd);
      this.fd = -1;
      sys.rename(this.partial, this.output);
    });
    this.done();
  }

  /** Give up: close without flushing what is left, and remove the partial file. */
  abort(): void {
    if (this.fd >= 0) sys.close(this.fd);
    this.fd = -1;
    try {
      sys.unlink(this.partial);
    } catch {}
    this.done();
  }

  private done(): void {
    for (const s of Object.keys(SIGNALS)) process.off(s, this.interrupted);
  }
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

const HINTS: Record<string, string> = {
  ENOENT: "its directory does not exist",
  EACCES: "choose a directory you can write to",
  EROFS: "choose a directory you can write to",
  ENOSPC: "free some space, or write it elsewhere",
  EDQUOT: "free some space, or write it elsewhere",
};

async function compress(data: Uint8Array, codec: Codec): Promise<Uint8Array> {
  if (codec === "zstd") return Bun.zstdCompress(data, { level: 3 });
  const zlib = await import("node:zlib");
  return new Promise((resolve, reject) => zlib.gzip(data, { level: 6 }, (e, b) => (e ? reject(e) : resolve(new Uint8Array(b.buffer, b.byteOffset, b.length)))));
}

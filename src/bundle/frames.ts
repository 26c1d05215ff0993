// Writing a byte stream as independent compressed frames (zstd frames or
// gzip members), several at a time on the thread pool, in order, to a file
// that appears whole or not at all, or to standard output ("-").
import { dirname } from "node:path";
import { BunkerError } from "../errors.ts";
import * as sys from "../linux/sys.ts";
import type { FromWorker, ToWorker } from "./zstd-worker.ts";

export type Codec = "zstd" | "gzip";

/** The output that is the standard output. */
export const STDOUT = "-";

/**
 * 8 MiB of tar per frame: measured on a Debian minbase tar at zstd level 3,
 * 4 MiB frames give a ratio of 2.91, 8 MiB 2.96 and 16 MiB 2.98 (one zstd
 * stream: 2.93), and frames must stay small enough to spread over cores.
 */
const FRAME = 8 << 20;

export class FrameWriter {
  /** Frame buffers, shared with the compression threads; one is filled while the others compress. */
  private readonly slots: Uint8Array[];
  private readonly free: number[];
  private cur: number;
  private len = 0;
  private readonly inflight: { slot: number; bytes: Promise<Uint8Array> }[] = [];
  /** zstd on threads of our own through the host's libzstd; undefined once known to be unavailable. */
  private workers?: ZstdWorkers;
  /** Named this by close(), then renamed to the output; until then unnamed (O_TMPFILE) where the file system can. */
  private readonly partial: string;
  private fd = -1;
  private named = false;
  /** Bytes in and out, for progress and the summary. */
  raw = 0;
  compressed = 0;
  /** Frames compressed on threads of its own (the rest on Bun's pool). */
  threaded = 0;

  constructor(
    readonly output: string,
    private readonly codec: Codec,
    options: { parallel?: number; hostZstd?: boolean } = {},
  ) {
    // a frame per core in the air, and one more being filled; memory stays bounded on large hosts
    const parallel = options.parallel ?? Math.min(4, Math.max(2, navigator.hardwareConcurrency ?? 2));
    this.slots = slices(sys.hugeBuffer((parallel + 1) * FRAME), FRAME);
    this.free = this.slots.map((_, i) => i).reverse();
    this.cur = this.free.pop()!;
    if (codec === "zstd" && options.hostZstd !== false) this.workers = new ZstdWorkers(this.slots, parallel);
    this.partial = `${output}.${process.pid}.partial`;
    if (output === STDOUT) {
      this.fd = 1; // a stream: what is written is out, and a reader sees a cut one as truncated (no bunker.sha256)
      return;
    }
    // before the partial file exists: a signal between the two would leave it behind
    for (const s of Object.keys(SIGNALS)) process.on(s, this.interrupted);
    try {
      // the bundle holds the container's files, secrets among them: its owner's alone (0600, as ssh keys)
      const tmp = this.io(() => sys.openTmpfile(dirname(output)));
      if (tmp !== undefined) this.fd = tmp;
      else {
        this.fd = this.io(() => sys.openWrite(this.partial, 0o600));
        this.named = true;
      }
    } catch (e) {
      this.done();
      throw e;
    }
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
      const hint = this.output === STDOUT ? undefined : HINTS[e.code];
      throw new BunkerError(`cannot write ${this.output === STDOUT ? "the standard output" : this.output}: ${e.reason}${hint ? ` (${hint})` : ""}`);
    }
  }

  async write(bytes: Uint8Array): Promise<void> {
    for (let off = 0; off < bytes.length; ) {
      const take = Math.min(FRAME - this.len, bytes.length - off);
      this.slots[this.cur]!.set(bytes.subarray(off, off + take), this.len);
      off += take;
      await this.advance(take);
    }
  }

  /** The rest of the current frame, to fill in place (then advance() past what was put there). */
  room(): Uint8Array {
    return this.slots[this.cur]!.subarray(this.len);
  }

  /** n more bytes of the frame are filled; a promise only when that filled it. */
  advance(n: number): Promise<void> | undefined {
    this.raw += n;
    this.len += n;
    return this.len === FRAME ? this.frame() : undefined;
  }

  private async frame(): Promise<void> {
    const slot = this.cur;
    const len = this.len;
    if (this.workers && !(await this.workers.ready)) {
      this.workers.close();
      this.workers = undefined; // no libzstd on this host: Bun's own zstd
    }
    if (this.workers) this.threaded++;
    const bytes = this.workers ? this.workers.compress(slot, len) : compress(this.slots[slot]!.subarray(0, len), this.codec);
    this.inflight.push({ slot, bytes });
    // memory stays bounded: a slot frees up when its frame is written out
    while (!this.free.length) await this.out(this.inflight.shift()!);
    this.cur = this.free.pop()!;
    this.len = 0;
  }

  private async out(job: { slot: number; bytes: Promise<Uint8Array> }): Promise<void> {
    const bytes = await job.bytes;
    this.io(() => sys.writeAll(this.fd, bytes));
    // its writeback starts now, while later frames compress, not all of it at the closing fsync
    if (this.output !== STDOUT) sys.startWriteback(this.fd, this.compressed, bytes.length);
    this.compressed += bytes.length;
    this.free.push(job.slot);
    // a frame compressed on Bun's pool is a new buffer, which a lazy GC left in memory by the dozen (gzip of 300 MB
    // that does not compress: 203-236 MB at its peak, 126 MB with this); a collection per 8 MiB frame costs next to nothing
    if (!this.workers) Bun.gc(true);
  }

  /** Flush, sync, and put the file in place under its name. */
  async close(): Promise<void> {
    if (this.len) await this.frame();
    while (this.inflight.length) await this.out(this.inflight.shift()!);
    if (this.output === STDOUT) return this.done();
    this.io(() => {
      sys.fsync(this.fd);
      // whole, under its name at once; a link, unlike rename, never replaces a file that appeared meanwhile
      if (!this.named) this.naming(() => sys.linkTmpfile(this.fd, this.output));
      sys.close(this.fd);
      this.fd = -1;
      if (this.named) this.naming(() => this.place());
    });
    this.done();
  }

  /** A step that gives the output its name, which a file that appeared meanwhile has taken (EEXIST). */
  private naming(step: () => void): void {
    try {
      step();
    } catch (e) {
      if (!(e instanceof sys.SysError && e.code === "EEXIST")) throw e;
      throw new BunkerError(`cannot write ${this.output}: a file of that name appeared while the bundle was written: remove it first, or choose another -o`);
    }
  }

  /** The partial file under its name: linked, as a link never replaces a file that appeared meanwhile; renamed where the file system has no links. */
  private place(): void {
    try {
      sys.link(this.partial, this.output);
    } catch (e) {
      if (!(e instanceof sys.SysError) || e.code === "EEXIST") throw e;
      return sys.rename(this.partial, this.output);
    }
    sys.unlink(this.partial);
  }

  /** Give up: close without flushing what is left, and remove the partial file. */
  abort(): void {
    if (this.output === STDOUT) return this.done();
    if (this.fd >= 0) sys.close(this.fd);
    this.fd = -1;
    if (this.named)
      try {
        sys.unlink(this.partial);
      } catch {}
    this.done();
  }

  private done(): void {
    for (const s of Object.keys(SIGNALS)) process.off(s, this.interrupted);
    this.workers?.close();
  }
}

/** A buffer cut into pieces of a size. */
function slices(b: Uint8Array, size: number): Uint8Array[] {
  return Array.from({ length: b.length / size }, (_, i) => b.subarray(i * size, (i + 1) * size));
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

/**
 * libzstd's parameters (zstd.h's ZSTD_c_*): level 2 (the "fast" strategy)
 * with a window as large as a frame and a 2^18 hash table. On 8 MiB frames
 * of the minbase tar, through the host's libzstd 1.5.4: ratio 2.992,
 * against 2.999 for level 3 with the same window (2.913 with level 3's own
 * 2 MiB one; level 2 with its own table 2.812, with a 2^17 one 2.927). As
 * fast as level 3 alone on a core (721 against 717 ms, medians of 30
 * alternating runs), but faster with both cores compressing, as an export
 * has them (two processes at once: 1,024 against 1,155 and 1,042 against
 * 1,125 ms, medians of 12). Into reused buffers: Bun.zstdCompressSync (Bun's
 * zstd 1.5.7) took 0.57 CPU-seconds where this took 0.34, as it returns
 * fresh, zeroed output per call.
 */
const PARAMS: [number, number][] = [
  [100, 2], // ZSTD_c_compressionLevel
  [101, Math.log2(FRAME)], // ZSTD_c_windowLog
  [102, 18], // ZSTD_c_hashLog
];

/** The zstd thread's code: the compiled executable holds it as an entry point of its own (scripts/build.ts). */
export const ZSTD_WORKER = Bun.main.startsWith("/$bunfs/") ? "/$bunfs/root/bundle/zstd-worker.js" : new URL("./zstd-worker.ts", import.meta.url).href;

/** Compression threads through the host's libzstd, each frame into an output buffer of its slot. */
class ZstdWorkers {
  private readonly threads: Worker[];
  private readonly outs: Uint8Array[];
  private readonly waiting = new Map<number, { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }>();
  private next = 0;
  /** Whether every thread could open libzstd; rejected if one could not even start. */
  readonly ready: Promise<boolean>;

  constructor(slots: Uint8Array[], parallel: number) {
    const bound = FRAME + (FRAME >> 7) + (64 << 10); // above ZSTD_compressBound(FRAME)
    this.outs = slices(sys.hugeBuffer(slots.length * bound), bound);
    const init: ToWorker = { ins: slots, outs: this.outs, params: PARAMS };
    this.threads = Array.from({ length: parallel }, () => new Worker(ZSTD_WORKER));
    this.ready = Promise.all(
      this.threads.map(
        (w) =>
          new Promise<boolean>((resolve, reject) => {
            w.onerror = (e) => {
              const error = new BunkerError(`a compression thread failed: ${e.message}`);
              reject(error);
              for (const job of this.waiting.values()) job.reject(error);
              this.waiting.clear();
            };
            w.onmessage = (e: MessageEvent<FromWorker>) => {
              const m = e.data;
              if ("ready" in m) return resolve(m.ready);
              const job = this.waiting.get(m.slot)!;
              this.waiting.delete(m.slot);
              if ("error" in m) job.reject(new BunkerError(`compressing failed: ${m.error}`));
              else job.resolve(this.outs[m.slot]!.subarray(0, m.size));
            };
            w.postMessage(init);
          }),
      ),
    ).then((all) => all.every(Boolean));
    this.ready.catch(() => {}); // seen when the first frame awaits it; an export that ends before then has no use for it
  }

  /** The frame in a slot, compressed: valid until that slot is compressed again. */
  compress(slot: number, len: number): Promise<Uint8Array> {
    const done = new Promise<Uint8Array>((resolve, reject) => this.waiting.set(slot, { resolve, reject }));
    done.catch(() => {}); // an aborted export awaits it no more
    this.threads[this.next++ % this.threads.length]!.postMessage({ slot, len } satisfies ToWorker);
    return done;
  }

  close(): void {
    for (const w of this.threads) w.terminate();
  }
}

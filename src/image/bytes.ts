// Reading an async byte stream in exact amounts, copying only what spans chunks.
// Sources may reuse their buffers (sys.readChunks, decompress): a chunk is
// valid until two more have been read, so what is kept must be copied. The
// reader holds one chunk at a time: what spans chunks is copied as it goes.

export class TruncatedError extends Error {}

/** A stream longer than its reader takes (collect's max). */
export class TooLargeError extends Error {}

const EMPTY = new Uint8Array(0);

export class ByteReader {
  private readonly it: AsyncIterator<Uint8Array>;
  /** Unread chunks; the first may be partly read (from `off`). */
  private chunks: Uint8Array[] = [];
  private off = 0;
  private buffered = 0;
  private done = false;
  /** Bytes handed out so far. */
  position = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    while (!this.done) {
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        return false;
      }
      const chunk = r.value instanceof Uint8Array ? r.value : new Uint8Array(r.value as ArrayBuffer);
      if (chunk.length === 0) continue;
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      return true;
    }
    return false;
  }

  /** Up to n bytes from the front: the rest of the first chunk, without copying. */
  private take(n: number): Uint8Array {
    const first = this.chunks[0]!;
    const off = this.off;
    return first.subarray(off, off + this.drop(n));
  }

  /** Pass over up to n bytes of the first chunk; how many. */
  private drop(n: number): number {
    const first = this.chunks[0]!;
    const len = Math.min(n, first.length - this.off);
    this.off += len;
    this.buffered -= len;
    this.position += len;
    if (this.off === first.length) {
      this.chunks.shift();
      this.off = 0;
    }
    return len;
  }

  /** The unread rest of the chunk at hand, without copying or reading it; undefined when there is none. */
  peekNow(): Uint8Array | undefined {
    return this.chunks[0]?.subarray(this.off);
  }

  /** Exactly n bytes now, without waiting or copying, when the chunk at hand holds them; else undefined (nothing read). */
  readNow(n: number): Uint8Array | undefined {
    if (n === 0) return EMPTY;
    const first = this.chunks[0];
    return first && first.length - this.off >= n ? this.take(n) : undefined;
  }

  /** Pass over n bytes now when the chunk at hand holds them; false (nothing read) when not. */
  skipNow(n: number): boolean {
    if (n === 0) return true;
    const first = this.chunks[0];
    if (!first || first.length - this.off < n) return false;
    this.drop(n);
    return true;
  }

  /** Exactly n bytes, or undefined at a clean end of stream (nothing read). */
  async readExact(n: number): Promise<Uint8Array | undefined> {
    if (this.buffered === 0 && !(await this.fill())) return undefined;
    const head = this.take(n);
    if (head.length === n) return head;
    const out = new Uint8Array(n); // it spans chunks: copy just these n bytes, each part before the next chunk is read
    out.set(head, 0);
    for (let got = head.length; got < n; ) {
      if (this.buffered === 0 && !(await this.fill())) throw new TruncatedError(`the stream ends in the middle of a record (${got} of ${n} bytes)`);
      const part = this.take(n - got);
      out.set(part, got);
      got += part.length;
    }
    return out;
  }

  /** n bytes as they arrive, in chunks (each shown to `seen` first); throws if the stream ends first. */
  async *stream(n: number, seen?: (chunk: Uint8Array) => void): AsyncGenerator<Uint8Array> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0 && !(await this.fill())) {
        throw new TruncatedError(`the stream ends ${left} bytes before the end of a file`);
      }
      const out = this.take(left);
      left -= out.length;
      seen?.(out);
      yield out;
    }
  }

  /** Everything left, to the end of the stream. */
  async *rest(): AsyncGenerator<Uint8Array> {
    for (;;) {
      if (this.buffered === 0 && !(await this.fill())) return;
      yield this.take(this.buffered);
    }
  }

  /** Stop reading: the source ends now (it closes its file, gives its buffers back). */
  async close(): Promise<void> {
    this.done = true;
    this.chunks = [];
    this.buffered = 0;
    await this.it.return?.();
  }

  async skip(n: number): Promise<void> {
    while (n > 0) {
      if (this.buffered === 0 && !(await this.fill())) throw new TruncatedError(`the stream ends ${n} bytes before the end of a file`);
      n -= this.drop(n);
    }
  }
}

/** Collect a whole stream (for small things: manifests, configs). */
export async function collect(source: AsyncIterable<Uint8Array>, max = 64 << 20): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const p of source) {
    total += p.length;
    if (total > max) throw new TooLargeError(`more than ${max} bytes`);
    parts.push(p.slice()); // sources may reuse their buffers
  }
  const out = new Uint8Array(total);
  parts.reduce((off, p) => (out.set(p, off), off + p.length), 0);
  return out;
}

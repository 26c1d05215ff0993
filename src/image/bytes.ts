// Reading an async byte stream in exact amounts, without copying more than needed.

export class TruncatedError extends Error {}

export class ByteReader {
  private readonly it: AsyncIterator<Uint8Array>;
  private buf: Uint8Array = new Uint8Array(0);
  private done = false;
  /** Bytes handed out so far. */
  position = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const r = await this.it.next();
    if (r.done) {
      this.done = true;
      return false;
    }
    const chunk = r.value instanceof Uint8Array ? r.value : new Uint8Array(r.value as ArrayBuffer);
    this.buf = this.buf.length === 0 ? chunk : concat(this.buf, chunk);
    return true;
  }

  /** Exactly n bytes, or undefined at a clean end of stream (nothing read). */
  async readExact(n: number): Promise<Uint8Array | undefined> {
    while (this.buf.length < n) {
      if (!(await this.fill())) {
        if (this.buf.length === 0) return undefined;
        throw new TruncatedError(`the stream ends in the middle of a record (${this.buf.length} of ${n} bytes)`);
      }
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    this.position += n;
    return out;
  }

  /** n bytes as they arrive, in chunks; throws if the stream ends first. */
  async *stream(n: number): AsyncGenerator<Uint8Array> {
    let left = n;
    while (left > 0) {
      if (this.buf.length === 0 && !(await this.fill())) {
        throw new TruncatedError(`the stream ends ${left} bytes before the end of a file`);
      }
      const take = Math.min(left, this.buf.length);
      const out = this.buf.subarray(0, take);
      this.buf = this.buf.subarray(take);
      this.position += take;
      left -= take;
      yield out;
    }
  }

  /** Everything left, to the end of the stream. */
  async *rest(): AsyncGenerator<Uint8Array> {
    for (;;) {
      if (this.buf.length === 0 && !(await this.fill())) return;
      const out = this.buf;
      this.buf = new Uint8Array(0);
      this.position += out.length;
      yield out;
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.stream(n)) void _;
  }

  /** True when nothing is left (reads ahead one chunk at most). */
  async atEnd(): Promise<boolean> {
    return this.buf.length === 0 && !(await this.fill());
  }
}

export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** Collect a whole stream (for small things: manifests, configs). */
export async function collect(source: AsyncIterable<Uint8Array>, max = 64 << 20): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const p of source) {
    total += p.length;
    if (total > max) throw new Error(`more than ${max} bytes`);
    parts.push(p);
  }
  const out = new Uint8Array(total);
  parts.reduce((off, p) => (out.set(p, off), off + p.length), 0);
  return out;
}

// Sources that hand out a byte string in chunks the way bunker's own do.

/** `data` in chunks of `size`, views of it. */
export async function* chunked(data: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < data.length; off += size) yield data.subarray(off, off + size);
}

/** `data` in chunks of `size`, each written into the next of two reused buffers (as decompress reuses its own). */
export async function* reusing(data: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  const bufs = [new Uint8Array(size), new Uint8Array(size)];
  for (let off = 0, n = 0; off < data.length; off += size, n++) {
    const part = data.subarray(off, off + size);
    const buf = bufs[n % 2]!;
    buf.fill(0xee); // what a reader that kept the old contents would see
    buf.set(part);
    yield buf.subarray(0, part.length);
  }
}

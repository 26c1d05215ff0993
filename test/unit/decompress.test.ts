// The decompressor between a file and the tar reader: corrupt input and a
// reader that stops early must end the stream, never leave it waiting.
import { expect, test } from "bun:test";
import { gzipSync } from "node:zlib";
import { decompress, sniff } from "../../src/image/import.ts";
import { ArchiveError } from "../../src/image/unpack.ts";

// 5 MiB of text that compresses into real blocks (random bytes would be
// stored raw, where a changed byte is just other data): far more than the
// decompressor buffers
const lines: string[] = [];
for (let i = 0, x = 1; lines.length < 1 << 19; i++) lines.push(`${i} ${(x = (x * 1103515245 + 12345) >>> 0) % 1000}`);
const raw = new TextEncoder().encode(lines.join("\n"));

async function* chunks(bytes: Uint8Array, size = 64 << 10): AsyncGenerator<Uint8Array> {
  for (let o = 0; o < bytes.length; o += size) yield bytes.subarray(o, o + size);
}

/** A hang is the failure these tests look for: the timer also keeps the loop alive, so it is seen. */
function deadline<T>(work: Promise<T>): Promise<T> {
  let timer: Timer | undefined;
  const hung = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("the decompressor hung")), 4000)));
  return Promise.race([work, hung]).finally(() => clearTimeout(timer));
}

function total(source: AsyncIterable<Uint8Array>): Promise<number> {
  return deadline(
    (async () => {
      let n = 0;
      for await (const c of source) n += c.length;
      return n;
    })(),
  );
}

for (const [how, pack] of [
  ["zstd", (b: Uint8Array) => Bun.zstdCompressSync(b)],
  ["gzip", (b: Uint8Array) => new Uint8Array(gzipSync(b))],
] as const) {
  const packed = pack(raw);

  test(`${how}: whole streams come back whole`, async () => {
    expect(sniff(packed)).toBe(how);
    expect(await total(decompress(chunks(packed), how))).toBe(raw.length);
  });

  test(`${how}: a corrupt block early on is an ArchiveError, not a hang`, async () => {
    const bad = Uint8Array.from(packed); // a copy (Buffer.slice would share)
    bad.fill(0xff, 20_000, 20_100); // well before the end: the feeder is still waiting for room
    await expect(total(decompress(chunks(bad), how))).rejects.toBeInstanceOf(ArchiveError);
  });

  test(`${how}: a reader that stops after the first chunk lets it finish`, async () => {
    await deadline(
      (async () => {
        for await (const _ of decompress(chunks(packed), how)) break;
      })(),
    );
  });
}

// The decompressor between a file and the tar reader: zstd frames cut and
// decoded in parallel, or streamed; corrupt input and a reader that stops
// early must end the stream, never leave it waiting.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { createZstdCompress, gzipSync } from "node:zlib";
import { cutFrame, decompress, FrameWalker, sniff, useDecodeThread, useHostZstd } from "../../src/image/decompress.ts";
import { ArchiveError } from "../../src/image/unpack.ts";
import { chunked } from "../helpers/chunks.ts";

// 5 MiB of text that compresses into real blocks (random bytes would be
// stored raw, where a changed byte is just other data): far more than the
// decompressor buffers
const lines: string[] = [];
for (let i = 0, x = 1; lines.length < 1 << 19; i++) lines.push(`${i} ${(x = (x * 1103515245 + 12345) >>> 0) % 1000}`);
const raw = new TextEncoder().encode(lines.join("\n"));

const chunks = (bytes: Uint8Array, size = 64 << 10) => chunked(bytes, size);

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

/** zstd frames as bunker's bundles have them: each states its size. */
function sizedFrames(b: Uint8Array, frame = 1 << 20): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let o = 0; o < b.length; o += frame) {
    parts.push(Bun.zstdCompressSync(b.subarray(o, o + frame)));
    if (o === 0) parts.push(new Uint8Array([0x5a, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3])); // a skippable frame
  }
  return Buffer.concat(parts);
}

/** One frame of unknown size, as a streaming compressor writes it. */
async function streamedFrame(b: Uint8Array): Promise<Uint8Array> {
  const z = createZstdCompress();
  const parts: Buffer[] = [];
  z.on("data", (c: Buffer) => parts.push(c));
  const end = new Promise((r) => z.on("end", r));
  z.write(b.subarray(0, 1000));
  z.end(b.subarray(1000));
  await end;
  return Buffer.concat(parts);
}

const streamed = await streamedFrame(raw);
const cases = [
  ["zstd", "one sized frame", Bun.zstdCompressSync(raw)],
  ["zstd", "sized frames and a skippable one", sizedFrames(raw)],
  ["zstd", "a skippable frame first, as pzstd writes one", Buffer.concat([new Uint8Array([0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]), sizedFrames(raw)])],
  ["zstd", "a frame of unknown size", streamed],
  ["zstd", "sized frames, then one of unknown size", Buffer.concat([sizedFrames(raw.subarray(0, 3 << 20)), await streamedFrame(raw.subarray(3 << 20))])],
  ["gzip", "one member", new Uint8Array(gzipSync(raw))],
] as const;

const zstdCases = cases.filter((c) => c[0] === "zstd");
for (const [how, what, packed] of [
  ...cases,
  ...zstdCases.map(([h, w, p]) => [h, `${w}, without libzstd`, p] as const),
  ...zstdCases.map(([h, w, p]) => [h, `${w}, on one thread`, p] as const),
  ...zstdCases.map(([h, w, p]) => [h, `${w}, as a peek`, p] as const),
]) {
  describe(`${how}, ${what}`, () => {
    // a peek decodes as far as it reads (libzstd's streaming decoder), the same bytes
    const dec = (source: AsyncIterable<Uint8Array>) => decompress(source, how, what.endsWith("as a peek"));
    beforeEach(() => (useHostZstd(!what.endsWith("without libzstd")), useDecodeThread(!what.endsWith("on one thread"))));
    afterEach(() => (useHostZstd(true), useDecodeThread(true)));
    test(`whole streams come back whole, in small or large reads`, async () => {
      expect(sniff(packed)).toBe(how);
      expect(await total(dec(chunks(packed)))).toBe(raw.length);
      expect(await total(dec(chunks(packed, 7777)))).toBe(raw.length);
      const copies = await Array.fromAsync(dec(chunks(packed, 1 << 20)), (c) => c.slice()); // buffers are reused
      expect(Buffer.concat(copies).equals(raw)).toBe(true);
    });

    test(`a corrupt block early on, or later (in a frame on the thread), is an ArchiveError, not a hang`, async () => {
      for (const at of [20_000, Math.floor(packed.length * 0.6)]) {
        const bad = Uint8Array.from(packed); // a copy (Buffer.slice would share)
        bad.fill(0xff, at, at + 100); // early: the feeder is still waiting for room
        await expect(total(dec(chunks(bad)))).rejects.toBeInstanceOf(ArchiveError);
      }
    });

    test(`cut short is an ArchiveError`, async () => {
      await expect(total(dec(chunks(packed.subarray(0, packed.length - 100))))).rejects.toBeInstanceOf(ArchiveError);
    });

    test(`a reader that stops after the first or the third chunk lets it finish, and leaves the buffers whole`, async () => {
      for (const stop of [1, 3]) {
        await deadline(
          (async () => {
            let n = 0;
            for await (const _ of dec(chunks(packed))) if (++n === stop) break;
          })(),
        );
        // the next stream borrows the same buffers: nothing may still be writing into them
        const copies = await Array.fromAsync(dec(chunks(packed, 1 << 20)), (c) => c.slice());
        expect(Buffer.concat(copies).equals(raw)).toBe(true);
      }
    });

    test(`a chunk stays as it was until two more have been read`, async () => {
      let [before, copy]: (Uint8Array | undefined)[] = [];
      let at = 0;
      for await (const c of dec(chunks(packed, 1 << 20))) {
        if (before) expect(Buffer.from(before).equals(Buffer.from(copy!))).toBe(true);
        expect(Buffer.from(c).equals(raw.subarray(at, (at += c.length)))).toBe(true);
        [before, copy] = [c, c.slice()];
      }
      expect(at).toBe(raw.length);
    });
  });
}

test("frames that fill the cutting buffers come back byte for byte while the thread decodes the one before", async () => {
  // 8 MiB frames, as a bundle's, that compress poorly (to ~6 MiB), in chunks of 1 and 3 MiB: the
  // cutter appends, moves and switches buffers while a frame cut from one of them is on the thread
  let x = 7;
  const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
  const frames: Uint8Array[] = [];
  const data = new Uint8Array(32 << 20);
  for (let i = 0; i < data.length; i++) data[i] = next() < 0.6 * 2 ** 32 ? 97 + ((i >> 3) % 17) : next() >>> 24;
  for (let o = 0; o < data.length; o += 8 << 20) frames.push(Bun.zstdCompressSync(data.subarray(o, o + (8 << 20))));
  const packed = Buffer.concat(frames);
  for (const size of [1 << 20, 3 << 20]) {
    let at = 0;
    let same = true;
    for await (const c of decompress(chunks(packed, size), "zstd")) {
      same &&= Buffer.compare(c, data.subarray(at, at + c.length)) === 0;
      at += c.length;
    }
    expect(`${size}: ${at} ${same}`).toBe(`${size}: ${data.length} true`);
  }
});

test("cutFrame finds a frame's end from its block headers alone", () => {
  const one = Bun.zstdCompressSync(raw.subarray(0, 300_000));
  expect(cutFrame(one)).toEqual({
    kind: "frame",
    length: one.length,
    contentSize: 300_000,
  });
  expect(cutFrame(Buffer.concat([one, one]))).toEqual({
    kind: "frame",
    length: one.length,
    contentSize: 300_000,
  });
  for (const n of [3, 7, 20, one.length - 1]) expect(cutFrame(one.subarray(0, n))).toEqual({ kind: "more" });
  expect(cutFrame(streamed)).toEqual({ kind: "stream" });
  expect(() => cutFrame(new TextEncoder().encode("not zstd at all"))).toThrow(/magic number/);
  const reserved = Uint8Array.from(one);
  reserved[4]! |= 0x08;
  expect(() => cutFrame(reserved)).toThrow(/reserved bit/);
});

test("a frame that lies about its size is refused", async () => {
  const one = Uint8Array.from(Bun.zstdCompressSync(raw.subarray(0, 300_000)));
  const at = 5 + (one[4]! & 0x20 ? 0 : 1); // the content size field: 4 bytes for this size
  new DataView(one.buffer).setUint32(at, 299_000, true);
  await expect(total(decompress(chunks(one), "zstd"))).rejects.toBeInstanceOf(ArchiveError);
});

test("FrameWalker is at a boundary only between frames, however the bytes are split", () => {
  const stream = sizedFrames(raw.subarray(0, 2 << 20), 256 << 10);
  const ends = new Set<number>();
  for (let o = 0; o < stream.length;) {
    const cut = cutFrame(stream.subarray(o));
    if (cut.kind !== "frame" && cut.kind !== "skip") throw new Error(`${cut.kind} at ${o}`);
    ends.add((o += cut.length));
  }
  for (const step of [1, 5, 4096, 1 << 20]) {
    const w = new FrameWalker();
    for (let o = 0; o < stream.length; o += step) {
      w.feed(stream.subarray(o, o + step));
      const at = Math.min(o + step, stream.length);
      if (w.atBoundary || ends.has(at)) expect(`${at}: ${w.atBoundary}`).toBe(`${at}: ${ends.has(at)}`);
    }
  }
  // a frame of unknown size, whole and cut
  for (const [bytes, whole] of [
    [streamed, true],
    [streamed.subarray(0, streamed.length - 100), false],
  ] as const) {
    const w = new FrameWalker();
    w.feed(bytes);
    expect(w.atBoundary).toBe(whole);
  }
});

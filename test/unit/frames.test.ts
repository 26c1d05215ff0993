// The bundle's frame writer: independent frames, compressed on threads of
// its own (through the host's libzstd) or Bun's pool, written in order, and
// a file that appears whole or not at all.
import { afterAll, expect, spyOn, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { type Codec, FrameWriter } from "../../src/bundle/frames.ts";
import { cutFrame } from "../../src/image/decompress.ts";
import * as sys from "../../src/linux/sys.ts";

const dir = mkdtempSync("/tmp/bunker-frames-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// 21 MiB that compress (two full frames and a partial one), with a stretch
// of noise so a frame holds stored blocks too
const FRAME = 8 << 20;
const data = new Uint8Array(21 << 20);
for (let i = 0, x = 1; i < data.length; i++) {
  x = (x * 1103515245 + 12345) >>> 0;
  data[i] = i > 9 << 20 && i < 10 << 20 ? x >>> 24 : 48 + ((i >> 7) % 10) + (x >>> 31);
}

/** Fill a writer the two ways export does: whole pieces, and reads straight into the frame. */
async function fill(w: FrameWriter): Promise<void> {
  await w.write(data.subarray(0, 1000));
  for (let off = 1000; off < 5 << 20; ) {
    const room = w.room();
    const n = Math.min(room.length, 77777, (5 << 20) - off);
    room.set(data.subarray(off, off + n));
    off += n;
    await w.advance(n);
  }
  await w.write(data.subarray(5 << 20));
}

/** The zstd frames of a file, each decoded on its own. */
function frames(file: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let off = 0; off < file.length; ) {
    const cut = cutFrame(file.subarray(off));
    if (cut.kind !== "frame") throw new Error(`not a sized frame at ${off}: ${cut.kind}`);
    out.push(Bun.zstdDecompressSync(file.subarray(off, off + cut.length)));
    off += cut.length;
  }
  return out;
}

for (const [name, codec, hostZstd] of [
  ["zstd on threads through libzstd", "zstd", true],
  ["zstd on Bun's pool (no libzstd)", "zstd", false],
  ["gzip", "gzip", false],
] as [string, Codec, boolean][]) {
  test(`${name}: independent frames of 8 MiB, in order, whole`, async () => {
    const out = join(dir, `${codec}-${hostZstd}.out`);
    const w = new FrameWriter(out, codec, { parallel: 2, hostZstd });
    await fill(w);
    expect(existsSync(out)).toBe(false); // written under another name until closed
    await w.close();
    expect(w.raw).toBe(data.length);
    expect(w.threaded).toBe(hostZstd ? 3 : 0);
    const file = new Uint8Array(readFileSync(out));
    expect(w.compressed).toBe(file.length);
    expect(file.length).toBeLessThan(data.length / 2);
    if (codec === "zstd") {
      const parts = frames(file);
      expect(parts.map((p) => p.length)).toEqual([FRAME, FRAME, data.length - 2 * FRAME]);
      expect(Buffer.concat(parts).equals(data)).toBe(true);
    } else {
      expect(Buffer.from(gunzipSync(file)).equals(Buffer.from(data))).toBe(true);
    }
  });
}

test("abort removes the partial file and leaves no output", async () => {
  const out = join(dir, "aborted.out");
  const w = new FrameWriter(out, "zstd", { parallel: 2 });
  await w.write(data.subarray(0, 17 << 20)); // two frames handed to the threads
  w.abort();
  expect(existsSync(out)).toBe(false);
  expect(readdirSync(dir).filter((f) => f.startsWith("aborted"))).toEqual([]);
});

test("where the file system has no O_TMPFILE, the output comes into place whole, and never replaces a file that appeared meanwhile", async () => {
  const spy = spyOn(sys, "openTmpfile").mockReturnValue(undefined);
  try {
    const out = join(dir, "named.out");
    const w = new FrameWriter(out, "zstd", { parallel: 2 });
    await w.write(data.subarray(0, 1 << 20));
    await w.close();
    expect(frames(new Uint8Array(readFileSync(out)))[0]!.length).toBe(1 << 20);
    const other = join(dir, "raced.out");
    const w2 = new FrameWriter(other, "zstd", { parallel: 2 });
    await w2.write(data.subarray(0, 1 << 20));
    writeFileSync(other, "mine");
    await expect(w2.close()).rejects.toThrow(`cannot write ${other}: a file of that name appeared while the bundle was written: remove it first, or choose another -o`);
    w2.abort();
    expect(readFileSync(other, "utf8")).toBe("mine");
    expect(readdirSync(dir).filter((f) => f.includes(".partial"))).toEqual([]);
  } finally {
    spy.mockRestore();
  }
});

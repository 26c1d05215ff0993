// The codecs the bundle could use, on one tar, in one run: what chose the
// host's libzstd (on threads of bunker's own) to write bundles and to read
// them, and left fflate out. Run by hand, never in CI:
//
//   npm i --no-save fflate && bun bench/codecs.ts /var/tmp/bunker-bench/minbase.tar
//
// (bench/bundle makes that tar.) Frames are 8 MiB, as in a bundle.
import * as zlib from "node:zlib";

const path = process.argv[2];
if (!path) throw new Error("usage: bun bench/codecs.ts TAR");
const data = await Bun.file(path).bytes();
const MB = data.length / 1e6;
const FRAME = 8 << 20;
const frames: Uint8Array[] = [];
for (let o = 0; o < data.length; o += FRAME) frames.push(data.subarray(o, o + FRAME));

/** Times f; it returns what it made, or how many bytes it wrote elsewhere. */
async function time(name: string, f: () => Promise<Uint8Array[] | number | void> | Uint8Array[] | void): Promise<Uint8Array[]> {
  const t = performance.now();
  const made = (await f()) ?? [];
  const rate = MB / ((performance.now() - t) / 1000);
  const out = typeof made === "number" ? [] : made;
  const size = typeof made === "number" ? made : out.reduce((a, b) => a + b.length, 0);
  console.log(`${name.padEnd(62)} ${rate.toFixed(0).padStart(5)} MB/s${size ? `  ratio ${(data.length / size).toFixed(2)}` : ""}`);
  return out;
}
const pool = <T>(work: (f: Uint8Array, done: (b: Uint8Array) => void) => T) =>
  Promise.all(frames.map((f) => new Promise<Uint8Array>((resolve) => work(f, resolve))));

type Fflate = { gzipSync(d: Uint8Array, o: { level: 6 }): Uint8Array; gunzipSync(d: Uint8Array): Uint8Array };
let fflate: Fflate | undefined;
const optional = "fflate"; // not a dependency: a variable keeps tsc from looking for it
try {
  fflate = (await import(optional)) as Fflate;
} catch {
  console.log("(fflate is not installed: npm i --no-save fflate)");
}
const fz = fflate ? await time("fflate gzip -6, one thread", () => frames.map((f) => fflate!.gzipSync(f, { level: 6 }))) : [];
const gz = await time("node:zlib gzip -6, frames on the pool", () => pool((f, done) => zlib.gzip(f, { level: 6 }, (_, b) => done(b))));
const zz = await time("Bun.zstdCompress -3, frames on the pool", () => Promise.all(frames.map((f) => Bun.zstdCompress(f, { level: 3 }))));
// what `bunker export` runs: libzstd -3 with an 8 MiB window, on threads of its own, into reused buffers, to a file
const { FrameWriter } = await import("../src/bundle/frames.ts");
const { unlinkSync } = await import("node:fs");
const file = `/tmp/bunker-codecs-${process.pid}.zst`;
for (const hostZstd of [true, false]) {
  await time(`bunker's FrameWriter to a file: ${hostZstd ? "libzstd -3 on its threads" : "Bun.zstdCompress (no libzstd)"}`, async () => {
    const w = new FrameWriter(file, "zstd", { hostZstd });
    await w.write(data);
    await w.close();
    unlinkSync(file);
    return w.compressed;
  });
}
if (fflate) await time("fflate gunzip, one thread", () => void fz.forEach((f) => fflate!.gunzipSync(f)));
await time("node:zlib gunzip, frames on the pool", async () => void (await pool((f, done) => zlib.gunzip(gz[frames.indexOf(f)]!, (_, b) => done(b)))));
await time("Bun.zstdDecompress, frames on the pool", async () => void (await Promise.all(zz.map((f) => Bun.zstdDecompress(f)))));
const { dlopen, FFIType: T, ptr } = await import("bun:ffi");
const z = dlopen("libzstd.so.1", {
  ZSTD_createDCtx: { args: [], returns: T.ptr },
  ZSTD_decompressDCtx: { args: [T.ptr, T.ptr, T.u64, T.ptr, T.u64], returns: T.u64 },
}).symbols;
const dctx = z.ZSTD_createDCtx();
const out = new Uint8Array(FRAME);
await time("libzstd (dlopen), one thread, a reused buffer", () => void zz.forEach((f) => z.ZSTD_decompressDCtx(dctx, ptr(out), out.length, ptr(f), f.length)));

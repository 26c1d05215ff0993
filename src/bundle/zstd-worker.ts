// A zstd thread through the host's libzstd: compression for
// src/bundle/frames.ts, decompression for src/image/decompress.ts. Frames go
// from and into buffers shared with the main thread, which are reused frame
// after frame (a fresh buffer per frame costs page faults, and
// Bun.zstdCompress takes a copy of its input and zeroes its output).
// Its own build entry point: scripts/build.ts embeds it in dist/bunker.
import * as ffi from "bun:ffi";
import { openLibzstd } from "./libzstd.ts";

const { ptr } = ffi;

/** main → worker: the slots (views of shared memory) once, then a frame to compress. */
export type ToWorker = { ins: Uint8Array[]; outs: Uint8Array[]; params: [number, number][] } | { slot: number; len: number };
/** worker → main: whether it can, then each frame's compressed size (or why not). */
export type FromWorker = { ready: true } | { ready: false; why: string } | { slot: number; size: number } | { slot: number; error: string };

/** main → a decompression thread: one whole frame into out (both views of shared memory). */
export type ToDecoder = { frame: Uint8Array; out: Uint8Array };
/** a decompression thread → main, for each frame in the order given: its decoded size, what libzstd found wrong with it, or why the thread cannot decode. */
export type FromDecoder = { size: number } | { corrupt: string } | { error: string };

declare const self: Worker;
const say = (m: FromWorker) => self.postMessage(m);

const open = () => openLibzstd(ffi);
let z: ReturnType<typeof open> | undefined;
let cctx: ReturnType<NonNullable<typeof z>["ZSTD_createCCtx"]> = null;
let ins: Uint8Array[] = [];
let outs: Uint8Array[] = [];

let dctx: ReturnType<NonNullable<typeof z>["ZSTD_createDCtx"]> = null;

/** One frame decoded (the thread opens libzstd at the first). */
function decode(m: ToDecoder): FromDecoder {
  try {
    z ??= open();
  } catch (e) {
    return { error: (e as Error).message };
  }
  dctx ??= z.ZSTD_createDCtx();
  if (!dctx) return { error: "ZSTD_createDCtx failed" };
  const r = z.ZSTD_decompressDCtx(dctx, ptr(m.out), m.out.length, ptr(m.frame), m.frame.length);
  return z.ZSTD_isError(r) ? { corrupt: String(z.ZSTD_getErrorName(r)) } : { size: Number(r) };
}

self.onmessage = (ev: MessageEvent<ToWorker | ToDecoder>) => {
  const m = ev.data;
  if ("frame" in m) return self.postMessage(decode(m));
  if ("ins" in m) {
    try {
      z = open();
    } catch (e) {
      return say({ ready: false, why: (e as Error).message });
    }
    cctx = z.ZSTD_createCCtx();
    if (!cctx) return say({ ready: false, why: "ZSTD_createCCtx failed" });
    for (const [p, v] of m.params) {
      const r = z.ZSTD_CCtx_setParameter(cctx, p, v);
      if (z.ZSTD_isError(r)) return say({ ready: false, why: `libzstd: ${z.ZSTD_getErrorName(r)}` });
    }
    ({ ins, outs } = m); // views of memory shared with the main thread
    return say({ ready: true });
  }
  const out = outs[m.slot]!;
  // the parameters stay set from frame to frame; each call writes one whole frame
  const r = z!.ZSTD_compress2(cctx, ptr(out), out.length, ptr(ins[m.slot]!), m.len);
  say(z!.ZSTD_isError(r) ? { slot: m.slot, error: String(z!.ZSTD_getErrorName(r)) } : { slot: m.slot, size: Number(r) });
};

// The host's libzstd (libzstd1: dpkg and apt depend on it), the functions
// bunker calls: one binding for the main thread (src/image/decompress.ts)
// and the zstd threads (src/bundle/zstd-worker.ts). bun:ffi is passed in, so
// that nothing loads it before a zstd stream needs it.
type Ffi = typeof import("bun:ffi");

/** Open libzstd.so.1; throws where it is missing. */
export function openLibzstd({ dlopen, FFIType: T }: Ffi) {
  return dlopen("libzstd.so.1", {
    ZSTD_createCCtx: { args: [], returns: T.ptr },
    ZSTD_CCtx_setParameter: { args: [T.ptr, T.i32, T.i32], returns: T.u64 },
    ZSTD_compress2: { args: [T.ptr, T.ptr, T.u64, T.ptr, T.u64], returns: T.u64 },
    ZSTD_createDCtx: { args: [], returns: T.ptr },
    ZSTD_freeDCtx: { args: [T.ptr], returns: T.u64 },
    ZSTD_decompressDCtx: { args: [T.ptr, T.ptr, T.u64, T.ptr, T.u64], returns: T.u64 },
    ZSTD_decompressStream: { args: [T.ptr, T.ptr, T.ptr], returns: T.u64 },
    ZSTD_isError: { args: [T.u64], returns: T.u32 },
    ZSTD_getErrorName: { args: [T.u64], returns: T.cstring },
  }).symbols;
}

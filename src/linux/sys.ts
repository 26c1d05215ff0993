// The kernel seam on the Bun side: the few libc calls bunker makes, through
// bun:ffi. `run` does all its host I/O here rather than through node:fs,
// node:path or node:crypto: on a slow VM each of those modules costs Bun
// several milliseconds to load, which is most of our start-up budget.
// Loaded lazily, so `--version` and `--help` never pay for it.
import type { Pointer } from "bun:ffi";
import { dirname } from "node:path";

type Ffi = typeof import("bun:ffi");

function defs(T: Ffi["FFIType"]) {
  return {
    open: { args: [T.ptr, T.i32, T.u32], returns: T.i32 },
    syscall: { args: [T.i64, T.i64, T.ptr, T.ptr, T.u64], returns: T.i64 },
    fchmod: { args: [T.i32, T.u32], returns: T.i32 },
    fsync: { args: [T.i32], returns: T.i32 },
    sync_file_range: { args: [T.i32, T.i64, T.i64, T.u32], returns: T.i32 },
    pipe2: { args: [T.ptr, T.i32], returns: T.i32 },
    read: { args: [T.i32, T.ptr, T.u64], returns: T.i64 },
    pread: { args: [T.i32, T.ptr, T.u64, T.i64], returns: T.i64 },
    write: { args: [T.i32, T.ptr, T.u64], returns: T.i64 },
    close: { args: [T.i32], returns: T.i32 },
    mkdir: { args: [T.ptr, T.u32], returns: T.i32 },
    unlink: { args: [T.ptr], returns: T.i32 },
    rmdir: { args: [T.ptr], returns: T.i32 },
    rename: { args: [T.ptr, T.ptr], returns: T.i32 },
    linkat: { args: [T.i32, T.ptr, T.i32, T.ptr, T.i32], returns: T.i32 },
    symlink: { args: [T.ptr, T.ptr], returns: T.i32 },
    readlink: { args: [T.ptr, T.ptr, T.u64], returns: T.i64 },
    access: { args: [T.ptr, T.i32], returns: T.i32 },
    isatty: { args: [T.i32], returns: T.i32 },
    flock: { args: [T.i32, T.i32], returns: T.i32 },
    statx: { args: [T.i32, T.ptr, T.i32, T.u32, T.ptr], returns: T.i32 },
    getrandom: { args: [T.ptr, T.u64, T.u32], returns: T.i64 },
    memfd_create: { args: [T.ptr, T.u32], returns: T.i32 },
    fcntl: { args: [T.i32, T.i32, T.i32], returns: T.i32 },
    fexecve: { args: [T.i32, T.ptr, T.ptr], returns: T.i32 },
    execve: { args: [T.ptr, T.ptr, T.ptr], returns: T.i32 },
    lgetxattr: { args: [T.ptr, T.ptr, T.ptr, T.u64], returns: T.i64 },
    socket: { args: [T.i32, T.i32, T.i32], returns: T.i32 },
    bind: { args: [T.i32, T.ptr, T.u32], returns: T.i32 },
    setsockopt: { args: [T.i32, T.i32, T.i32, T.ptr, T.u32], returns: T.i32 },
    madvise: { args: [T.ptr, T.u64, T.i32], returns: T.i32 },
    poll: { args: [T.ptr, T.u64, T.i32], returns: T.i32 },
    lseek: { args: [T.i32, T.i64, T.i32], returns: T.i64 },
    __errno_location: { args: [], returns: T.ptr },
  } as const;
}

let cached: { ffi: Ffi; c: ReturnType<typeof load> } | undefined;
function load(ffi: Ffi) {
  return ffi.dlopen("libc.so.6", defs(ffi.FFIType)).symbols;
}
function libc() {
  if (!cached) {
    const ffi = require("bun:ffi") as Ffi;
    cached = { ffi, c: load(ffi) };
  }
  return cached;
}

export const ERRNO: Record<number, string> = {
  1: "EPERM", 2: "ENOENT", 4: "EINTR", 5: "EIO", 8: "ENOEXEC", 9: "EBADF", 12: "ENOMEM", 13: "EACCES",
  14: "EFAULT", 16: "EBUSY", 17: "EEXIST", 18: "EXDEV", 20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL", 24: "EMFILE",
  11: "EAGAIN", 26: "ETXTBSY", 27: "EFBIG", 28: "ENOSPC", 30: "EROFS", 32: "EPIPE", 36: "ENAMETOOLONG", 38: "ENOSYS", 39: "ENOTEMPTY", 40: "ELOOP",
  34: "ERANGE", 61: "ENODATA", 75: "EOVERFLOW", 95: "EOPNOTSUPP", 98: "EADDRINUSE", 99: "EADDRNOTAVAIL", 116: "ESTALE", 122: "EDQUOT",
};

const MESSAGES: Record<string, string> = {
  EPERM: "operation not permitted", ENOENT: "no such file or directory", EACCES: "permission denied",
  EEXIST: "file exists", ENOTDIR: "not a directory", EISDIR: "is a directory", EROFS: "read-only file system",
  ENOSPC: "no space left on device", EDQUOT: "disk quota exceeded", ELOOP: "too many levels of symbolic links",
  ENAMETOOLONG: "file name too long", EPIPE: "broken pipe (its reader has gone)", EAGAIN: "resource temporarily unavailable",
};

/** A failed system call: `code` is the errno name ("ENOENT"), as node:fs names it. */
export class SysError extends Error {
  readonly code: string;
  constructor(
    readonly call: string,
    readonly errno: number,
    readonly path?: string,
  ) {
    const code = ERRNO[errno] ?? `errno ${errno}`;
    super(`${call}${path ? ` ${path}` : ""}: ${MESSAGES[code] ?? code}${hintFor(code)}`);
    this.code = code;
  }
  /** "permission denied" and the like, without the call. */
  get reason(): string {
    return MESSAGES[this.code] ?? this.code;
  }
  /** What to do, where that is the same wherever it shows: " (...)", or "". */
  get hint(): string {
    return hintFor(this.code);
  }
}

/** A full disk is the user's to fix, wherever it shows (the store's XDG_DATA_HOME, the runtime's XDG_RUNTIME_DIR). */
const hintFor = (code: string) => (code === "ENOSPC" || code === "EDQUOT" ? " (free some space on that file system)" : "");

function errno(): number {
  const { ffi, c } = libc();
  return ffi.read.i32(c.__errno_location() as Pointer, 0);
}

const enc = new TextEncoder();
const cstr = (s: string): Uint8Array => enc.encode(`${s}\0`);
const p = (b: Uint8Array) => libc().ffi.ptr(b);

function check(rc: number | bigint, call: string, path?: string): number {
  const n = Number(rc);
  if (n < 0) throw new SysError(call, errno(), path);
  return n;
}

const O_RDONLY = 0, O_WRONLY = 1, O_CREAT = 0o100, O_EXCL = 0o200, O_TRUNC = 0o1000;
const O_NOFOLLOW = 0o400000, O_CLOEXEC = 0o2000000;

/** readFd's buffer: a run reads a dozen small files, and a fresh 64 KiB each costs more than the read. */
let scratch: Uint8Array | undefined;

/** Read an open fd (a file, or a pipe's end) to its end as text (at most max bytes, or throw EFBIG), and close it. */
export function readFd(fd: number, what: string, max = Number.MAX_SAFE_INTEGER): string {
  const { c } = libc();
  const buf = (scratch ??= new Uint8Array(65536));
  try {
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const n = readInto(fd, buf, what);
      if (n === 0) break;
      chunks.push(buf.slice(0, n));
      total += n;
      if (total > max) throw new SysError("read", 27 /* EFBIG */, what);
    }
    const all = new Uint8Array(total);
    chunks.reduce((off, ch) => (all.set(ch, off), off + ch.length), 0);
    return new TextDecoder().decode(all);
  } finally {
    c.close(fd);
  }
}

export function readFile(path: string): string {
  return readFd(openRead(path), path);
}

const O_PATH = 0o10000000, O_DIRECTORY = 0o200000, O_NONBLOCK = 0o4000, O_NOCTTY = 0o400;
const SYS_OPENAT2 = 437, SYS_GETDENTS64 = 217, RESOLVE_NO_MAGICLINKS = 0x02, RESOLVE_IN_ROOT = 0x10;

/**
 * A regular file of a root filesystem, read from the host as the kernel
 * would resolve it after chroot (openat2 RESOLVE_IN_ROOT: links and ".."
 * stay inside). Undefined when it is missing, not a regular file (a FIFO
 * would block us), or larger than max bytes.
 */
export function readInRoot(root: string, path: string, max = 4 << 20): string | undefined {
  const fd = openUnder(root, path, RESOLVE_IN_ROOT);
  if (fd < 0) return undefined;
  const st = fstat(fd);
  if (st?.kind !== "file" || st.size > max) {
    libc().c.close(fd);
    return undefined;
  }
  try {
    return readFd(fd, path, max);
  } catch {
    return undefined;
  }
}

const RESOLVE_BENEATH = 0x08;

/**
 * openat2 of path below root for reading, resolved as `resolve` says (no
 * /proc magic links either), O_NONBLOCK so that a FIFO cannot block the
 * open: the fd, or minus the errno.
 */
function openUnder(root: string, path: string, resolve: number): number {
  const { c } = libc();
  const rootfd = c.open(p(cstr(root)), O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
  if (rootfd < 0) return -errno();
  const how = new BigUint64Array([BigInt(O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC), 0n, BigInt(resolve | RESOLVE_NO_MAGICLINKS)]);
  const fd = Number(c.syscall(SYS_OPENAT2, rootfd, p(cstr(path)), p(new Uint8Array(how.buffer)), 24));
  const e = fd < 0 ? errno() : 0;
  c.close(rootfd);
  return fd < 0 ? -e : fd;
}

/**
 * Open root/path for reading without leaving root: openat2 RESOLVE_BENEATH
 * (a symlink or ".." that leads out fails with EXDEV, a /proc magic link with
 * ELOOP), O_NONBLOCK so that a FIFO cannot block the open. The caller checks
 * the kind: only a regular file is safe to read to its end.
 */
export function openBeneath(root: string, path: string): { fd: number; st: Stat } {
  const fd = openUnder(root, path, RESOLVE_BENEATH);
  if (fd < 0) throw new SysError("open", -fd, `${root}/${path}`);
  const st = fstat(fd);
  if (!st) {
    libc().c.close(fd);
    throw new SysError("stat", 2, `${root}/${path}`);
  }
  return { fd, st };
}

/** The file's text, or undefined when it cannot be read. */
export function tryRead(path: string): string | undefined {
  try {
    return readFile(path);
  } catch {
    return undefined;
  }
}

export function writeAll(fd: number, data: Uint8Array, what = "write"): void {
  const { c } = libc();
  for (let off = 0; off < data.length; ) {
    const n = Number(c.write(fd, p(data.subarray(off)), data.length - off));
    if (n < 0) {
      const e = errno();
      if (e === 4) continue;
      if (e === EAGAIN && waitFor(fd, POLLOUT)) continue;
      throw new SysError(what, e);
    }
    off += n;
  }
}

const EAGAIN = 11, POLLIN = 1, POLLOUT = 4;

/** Until fd (one another process left non-blocking: a pipe from Node, say) can be read or written. */
function waitFor(fd: number, events: number): boolean {
  const pfd = new Uint8Array(8);
  new DataView(pfd.buffer).setInt32(0, fd, true);
  new DataView(pfd.buffer).setInt16(4, events, true);
  for (;;) {
    if (libc().c.poll(p(pfd), 1, -1) >= 0) return true;
    if (errno() !== 4) return false;
  }
}

/** fd's offset, as lseek(2) says (undefined where it has none: a pipe). */
export function offset(fd: number): number | undefined {
  const at = Number(libc().c.lseek(fd, 0, 1 /* SEEK_CUR */));
  return at < 0 ? undefined : at;
}

/** Create (or with replace, truncate) a file and write it; never follows a symlink. */
export function writeFile(path: string, data: string | Uint8Array, mode = 0o644, replace = false): void {
  const fd = openWrite(path, mode, replace);
  try {
    writeAll(fd, typeof data === "string" ? enc.encode(data) : data, `write ${path}`);
  } finally {
    libc().c.close(fd);
  }
}

/** An extended attribute's value as text, or undefined (no such attribute, or no file). Links are not followed. */
export function getxattr(path: string, name: string): string | undefined {
  const buf = new Uint8Array(256);
  const n = Number(libc().c.lgetxattr(p(cstr(path)), p(cstr(name)), p(buf), buf.length));
  return n < 0 ? undefined : new TextDecoder().decode(buf.subarray(0, n));
}

/** Whether path (not followed) has the xattr: only ENODATA says no (a value of any size, or one that cannot be read, says yes). */
export function hasXattr(path: string, name: string): boolean {
  return Number(libc().c.lgetxattr(p(cstr(path)), p(cstr(name)), null, 0)) >= 0 || errno() !== 61; // ENODATA
}

/** Write a file whole or not at all: a temporary name, then rename; on failure (a full disk, say) the temporary goes. */
export function writeAtomic(path: string, data: string | Uint8Array, mode = 0o600): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFile(tmp, data, mode, true);
    rename(tmp, path);
  } catch (e) {
    try {
      unlink(tmp);
    } catch {}
    throw e;
  }
}

/** Write to a file that exists, such as a cgroup's control files (no create, no truncate, no chmod). */
export function writeExisting(path: string, data: string): void {
  const { c } = libc();
  const fd = check(c.open(p(cstr(path)), O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0), "open", path);
  try {
    writeAll(fd, new TextEncoder().encode(data), path);
  } finally {
    c.close(fd);
  }
}

/** A new file (or with replace, an existing one truncated), never through a link, open for writing with exactly `mode`. */
export function openWrite(path: string, mode = 0o644, replace = false): number {
  const { c } = libc();
  const flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (replace ? O_TRUNC : O_EXCL);
  const fd = check(c.open(p(cstr(path)), flags, mode), "create", path);
  try {
    check(c.fchmod(fd, mode), "chmod", path); // whatever the caller's umask
  } catch (e) {
    c.close(fd);
    throw e;
  }
  return fd;
}

/**
 * A pipe: [read end, write end], both close-on-exec. `size` asks for a
 * larger buffer (F_SETPIPE_SZ), which means fewer switches between writer
 * and reader; a user over the kernel's pipe limits keeps the default.
 */
export function pipe(size?: number): [number, number] {
  const { c } = libc();
  const fds = new Int32Array(2);
  check(c.pipe2(p(new Uint8Array(fds.buffer)), O_CLOEXEC), "pipe2");
  if (size) c.fcntl(fds[0]!, 1031 /* F_SETPIPE_SZ */, size);
  return [fds[0]!, fds[1]!];
}

/**
 * Read a pipe or file to its end (or a file's range [start, end)) in large
 * blocking reads, closing fd at the end. The chunks come from a ring of four
 * in one borrowed buffer (fresh memory costs page faults): a chunk is valid
 * until three more have been read, so consume or copy each before then.
 */
export async function* readChunks(fd: number, opts: { size?: number; start?: number; end?: number } = {}): AsyncGenerator<Uint8Array> {
  const { c } = libc();
  const size = opts.size ?? 1 << 20;
  const whole = borrowBuffer(4 * size);
  const ring = [0, 1, 2, 3].map((i) => whole.subarray(i * size, (i + 1) * size));
  let at = opts.start;
  try {
    for (let i = 0; ; i++) {
      const buf = ring[i % ring.length]!;
      const want = opts.end === undefined ? size : Math.min(size, opts.end - at!);
      if (want <= 0) return;
      const n = Number(at === undefined ? c.read(fd, p(buf), want) : c.pread(fd, p(buf), want, at));
      if (n < 0) {
        const e = errno();
        if (e === 4 || (e === EAGAIN && waitFor(fd, POLLIN))) continue;
        throw new SysError("read", e);
      }
      if (n === 0) return;
      if (at !== undefined) at += n;
      yield buf.subarray(0, n);
    }
  } finally {
    c.close(fd);
    giveBack(whole);
  }
}

/** n bytes of text from fd (fewer at its end), in blocking reads. */
export function readExactly(fd: number, n: number, what: string): string {
  const buf = new Uint8Array(n);
  let got = 0;
  for (let r; got < n && (r = readInto(fd, buf.subarray(got), what)) > 0; ) got += r;
  return new TextDecoder().decode(buf.subarray(0, got));
}

/** One blocking read into dst (as much as is there, up to its length); 0 at the end. */
export function readInto(fd: number, dst: Uint8Array, what?: string): number {
  const { c } = libc();
  for (;;) {
    const n = Number(c.read(fd, p(dst), dst.length));
    if (n >= 0) return n;
    if (errno() !== 4) throw new SysError("read", errno(), what);
  }
}

/** An existing file, open for reading (following links, as a named input may be one). */
export function openRead(path: string): number {
  return check(libc().c.open(p(cstr(path)), O_RDONLY | O_CLOEXEC, 0), "open", path);
}

export function fsync(fd: number): void {
  check(libc().c.fsync(fd), "fsync");
}

const SYNC_FILE_RANGE_WRITE = 2;

/**
 * Start writing a range of a file back to its disk, without waiting for it:
 * the fsync at the end then has only the tail left to wait for. A hint (a
 * file system or file that does not support it is no error).
 */
export function startWriteback(fd: number, offset: number, length: number): void {
  libc().c.sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE);
}

export function mkdir(path: string, mode = 0o755): boolean {
  const rc = libc().c.mkdir(p(cstr(path)), mode);
  if (rc === 0) return true;
  const e = errno();
  if (e === 17) return false; // EEXIST
  throw new SysError("mkdir", e, path);
}

export function unlink(path: string): void {
  check(libc().c.unlink(p(cstr(path))), "unlink", path);
}

export function rmdir(path: string): void {
  check(libc().c.rmdir(p(cstr(path))), "rmdir", path);
}

/**
 * An unnamed file in dir (O_TMPFILE), mode 0600: nothing is left if the process is
 * killed before linkTmpfile() names it. Undefined where the file system has no O_TMPFILE.
 */
export function openTmpfile(dir: string): number | undefined {
  const { c } = libc();
  const O_TMPFILE = 0o20000000 | O_DIRECTORY;
  const fd = c.open(p(cstr(dir)), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0o600);
  if (fd >= 0) return fd;
  const e = errno();
  if (e === 95 || e === 21 || e === 22) return undefined; // EOPNOTSUPP, EISDIR (old kernel), EINVAL
  throw new SysError("create", e, dir);
}

/** Give an O_TMPFILE file a name (which must not exist). */
export function linkTmpfile(fd: number, path: string): void {
  const AT_SYMLINK_FOLLOW = 0x400;
  check(libc().c.linkat(AT_FDCWD, p(cstr(`/proc/self/fd/${fd}`)), AT_FDCWD, p(cstr(path)), AT_SYMLINK_FOLLOW), "link", path);
}

/** A hard link to from at to (which must not exist). */
export function link(from: string, to: string): void {
  check(libc().c.linkat(AT_FDCWD, p(cstr(from)), AT_FDCWD, p(cstr(to)), 0), "link", to);
}

export function rename(from: string, to: string): void {
  check(libc().c.rename(p(cstr(from)), p(cstr(to))), "rename", to);
}

export function symlink(target: string, path: string): void {
  check(libc().c.symlink(p(cstr(target)), p(cstr(path))), "symlink", path);
}

export function readlink(path: string): string {
  const buf = new Uint8Array(4096);
  const n = check(libc().c.readlink(p(cstr(path)), p(buf), buf.length), "readlink", path);
  return new TextDecoder().decode(buf.subarray(0, n));
}

export function tryReadlink(path: string): string | undefined {
  try {
    return readlink(path);
  } catch {
    return undefined;
  }
}

/** Whether a port could be bound on the host now: undefined, or the errno
 * name (EADDRINUSE, EACCES, EADDRNOTAVAIL). TCP sockets take SO_REUSEADDR, as
 * servers do, so a port in TIME_WAIT is free. */
export function bindProbe(proto: "tcp" | "udp", ip: string, port: number): string | undefined {
  const { c } = libc();
  const v6 = ip.includes(":");
  const addr = new Uint8Array(v6 ? 28 : 16);
  const dv = new DataView(addr.buffer);
  dv.setUint16(0, v6 ? 10 : 2, true); // AF_INET6 : AF_INET
  dv.setUint16(2, port, false);
  if (v6) {
    const groups = ip.split("::").map((h) => (h ? h.split(":") : []));
    const words = groups.length === 2 ? [...groups[0]!, ...Array(8 - groups[0]!.length - groups[1]!.length).fill("0"), ...groups[1]!] : groups[0]!;
    words.forEach((w, i) => dv.setUint16(8 + 2 * i, Number.parseInt(w || "0", 16), false));
  } else {
    ip.split(".").forEach((b, i) => (addr[4 + i] = Number(b)));
  }
  const fd = c.socket(v6 ? 10 : 2, (proto === "tcp" ? 1 : 2) | O_CLOEXEC, 0);
  if (fd < 0) return ERRNO[errno()] ?? `errno ${errno()}`;
  try {
    if (proto === "tcp") c.setsockopt(fd, 1 /* SOL_SOCKET */, 2 /* SO_REUSEADDR */, p(new Uint8Array([1, 0, 0, 0])), 4);
    return c.bind(fd, p(addr), addr.length) === 0 ? undefined : (ERRNO[errno()] ?? `errno ${errno()}`);
  } finally {
    c.close(fd);
  }
}

/**
 * A file at path (which must not exist) that appears already locked: made
 * unnamed (O_TMPFILE) in its directory, locked, then linked in. No other
 * process can find it unlocked and take it for a dead owner's.
 */
export function lockedNew(path: string): number {
  const fd = openTmpfile(dirname(path));
  if (fd === undefined) return lockFile(path, false)!; // no O_TMPFILE here: open, then lock
  if (flock(fd, false, path) === undefined) throw new SysError("flock", 11, path); // no one else can have it
  try {
    linkTmpfile(fd, path);
  } catch (e) {
    libc().c.close(fd);
    throw e;
  }
  return fd;
}

/** lockFile, but for a file that must exist already: undefined when it does not (or is locked). */
export function lockExisting(path: string): number | undefined {
  const fd = libc().c.open(p(cstr(path)), O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
  if (fd < 0) {
    if (errno() === 2) return undefined;
    throw new SysError("open", errno(), path);
  }
  return flock(fd, false, path);
}

/** An open fd holding an exclusive flock on path (created if missing), or
 * undefined when another process holds it and wait is false. */
export function lockFile(path: string, wait: boolean): number | undefined {
  return flock(check(libc().c.open(p(cstr(path)), O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600), "open", path), wait, path);
}

/** An exclusive flock on fd: fd, or undefined (fd closed) when another process holds it and wait is false. */
function flock(fd: number, wait: boolean, path: string): number | undefined {
  const { c } = libc();
  const LOCK_EX = 2, LOCK_NB = 4;
  for (;;) {
    if (c.flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) === 0) return fd;
    const e = errno();
    if (e === 4) continue; // EINTR
    c.close(fd);
    if (e === 11) return undefined; // EWOULDBLOCK
    throw new SysError("flock", e, path);
  }
}

export function isatty(fd: number): boolean {
  return libc().c.isatty(fd) === 1;
}

/**
 * Whether fd was closed when this process started: Bun puts /dev/null in
 * the place of a closed standard descriptor, close-on-exec, which no
 * descriptor a process inherits can be (exec would have closed it).
 */
export function closedAtStart(fd: number): boolean {
  return (libc().c.fcntl(fd, 1 /* F_GETFD */, 0) & 1) /* FD_CLOEXEC */ !== 0;
}

export function executable(path: string): boolean {
  return libc().c.access(p(cstr(path)), 1 /* X_OK */) === 0;
}

export type Kind = "dir" | "file" | "link" | "fifo" | "other";
export interface Stat {
  kind: Kind;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  ino: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** Its birth time ("sec.nsec"), where the file system keeps one. */
  born?: string;
}

const AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100, AT_EMPTY_PATH = 0x1000, STATX_BASIC = 0x7ff, STATX_BTIME = 0x800;

function statx(dirfd: number, path: string, flags: number, what: string): Stat | undefined {
  const buf = new Uint8Array(256);
  const rc = libc().c.statx(dirfd, p(cstr(path)), flags, STATX_BASIC | STATX_BTIME, p(buf));
  if (rc < 0) {
    const e = errno();
    if (e === 2 || e === 20) return undefined; // ENOENT, ENOTDIR
    throw new SysError("stat", e, what);
  }
  const dv = new DataView(buf.buffer);
  const mode = dv.getUint16(28, true);
  const type = mode & 0o170000;
  const kind: Kind = type === 0o040000 ? "dir" : type === 0o100000 ? "file" : type === 0o120000 ? "link" : type === 0o010000 ? "fifo" : "other";
  const st: Stat = { kind, mode: mode & 0o7777, uid: dv.getUint32(20, true), gid: dv.getUint32(24, true), size: Number(dv.getBigUint64(40, true)), ino: Number(dv.getBigUint64(32, true)), mtime: Number(dv.getBigInt64(112, true)) };
  if (dv.getUint32(0, true) & STATX_BTIME) st.born = `${dv.getBigInt64(80, true)}.${dv.getUint32(88, true)}`;
  return st;
}

/**
 * What tells this file from one made at its path later, the path's own (no
 * symlink followed): inode and birth time (an inode freed is soon used again).
 * Undefined when missing or out of reach, or where the file system keeps no birth time.
 */
export function fileIdentity(path: string): string | undefined {
  try {
    const st = stat(path, false);
    return st?.born === undefined ? undefined : `${st.ino}@${st.born}`;
  } catch {
    return undefined; // one it cannot see is one it cannot tell
  }
}

/** statx(2); lstat semantics with follow = false. Undefined when missing. */
export function stat(path: string, follow = true): Stat | undefined {
  return statx(AT_FDCWD, path, follow ? 0 : AT_SYMLINK_NOFOLLOW, path);
}

function fstat(fd: number): Stat | undefined {
  return statx(fd, "", AT_EMPTY_PATH, `fd ${fd}`);
}

/** The names in a directory (getdents64), without "." and "..". */
export function readdir(path: string): string[] {
  const { c } = libc();
  const fd = check(c.open(p(cstr(path)), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0), "open", path);
  const names: string[] = [];
  const dec = new TextDecoder();
  try {
    const buf = new Uint8Array(32768);
    const dv = new DataView(buf.buffer);
    for (;;) {
      // syscall(nr, a1, a2, a3, a4): a3 is typed as a pointer but takes a plain number
      const n = check(c.syscall(SYS_GETDENTS64, fd, p(buf), buf.length as unknown as Pointer, 0), "getdents64", path);
      if (n === 0) return names;
      for (let off = 0; off < n; off += dv.getUint16(off + 16, true)) {
        const start = off + 19; // d_ino u64, d_off u64, d_reclen u16, d_type u8, d_name
        const name = dec.decode(buf.subarray(start, buf.indexOf(0, start)));
        if (name !== "." && name !== "..") names.push(name);
      }
    }
  } finally {
    c.close(fd);
  }
}

const HUGE_PAGE = 2 << 20;
const MADV_HUGEPAGE = 14;

/**
 * Memory for bulk buffers (compression frames), shared with worker threads,
 * on transparent huge pages where the kernel gives them (its mode "madvise",
 * Debian's default): zeroed, not touched yet. A 4 KiB page fault costs ~20 µs
 * on this project's VM, so filling 48 MiB for the first time took 245 ms;
 * with huge pages, 82 ms.
 */
export function hugeBuffer(size: number): Uint8Array {
  const whole = new Uint8Array(new SharedArrayBuffer(size + HUGE_PAGE));
  const addr = p(whole) as unknown as number;
  const skip = (HUGE_PAGE - (addr % HUGE_PAGE)) % HUGE_PAGE;
  libc().c.madvise((addr + skip) as unknown as Pointer, Math.floor((size + HUGE_PAGE - skip) / HUGE_PAGE) * HUGE_PAGE, MADV_HUGEPAGE); // a hint: failing is fine
  return whole.subarray(skip, skip + size);
}

const spare: Uint8Array[] = [];

/**
 * A bulk buffer of at least `size` bytes: one given back earlier (its pages
 * are in already), or a new hugeBuffer. An import reads and decodes its input
 * twice (a peek at the first entry, then the whole), with the same memory.
 */
export function borrowBuffer(size: number): Uint8Array {
  const i = spare.findIndex((b) => b.length >= size);
  return i >= 0 ? spare.splice(i, 1)[0]! : hugeBuffer(size);
}

/** Give a borrowed buffer back, once nothing refers to its contents any more. */
export function giveBack(buf: Uint8Array): void {
  spare.push(buf);
}

export function randomHex(bytes: number): string {
  const buf = new Uint8Array(bytes);
  check(libc().c.getrandom(p(buf), bytes, 0), "getrandom");
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- memfds and exec, for handing over to the C stage ----------------------
export const MFD_CLOEXEC = 0x1, MFD_ALLOW_SEALING = 0x2, MFD_EXEC = 0x10;
export const F_SEAL_ALL = 0x1 | 0x2 | 0x4 | 0x8; // SEAL, SHRINK, GROW, WRITE

export function memfd(name: string, flags: number): number {
  return check(libc().c.memfd_create(p(cstr(name)), flags), "memfd_create");
}

export function seal(fd: number, seals: number): void {
  check(libc().c.fcntl(fd, 1033 /* F_ADD_SEALS */, seals), "fcntl(F_ADD_SEALS)");
}

export function close(fd: number): void {
  libc().c.close(fd);
}

/** A NULL-terminated char*[]; `keep` holds the strings alive. */
function cArray(items: string[]): { array: BigUint64Array; keep: Uint8Array[] } {
  const keep = items.map(cstr);
  const array = new BigUint64Array(items.length + 1);
  keep.forEach((b, i) => (array[i] = BigInt(p(b))));
  return { array, keep };
}

/** Replace this process with the program in fd (or at a path). Returns only by throwing. */
export function exec(target: number | string, argv: string[], env: string[]): never {
  const { c } = libc();
  const a = cArray(argv);
  const e = cArray(env);
  if (typeof target === "number") c.fexecve(target, p(new Uint8Array(a.array.buffer)), p(new Uint8Array(e.array.buffer)));
  else c.execve(p(cstr(target)), p(new Uint8Array(a.array.buffer)), p(new Uint8Array(e.array.buffer)));
  void a.keep, e.keep;
  throw new SysError(typeof target === "number" ? "fexecve" : "execve", errno());
}

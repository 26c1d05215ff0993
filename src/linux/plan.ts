import { BunkerError } from "../errors.ts";

// The plan: a flat list of primitive operations that the C stage
// (ffi/stage.c) carries out in order. TypeScript makes every decision;
// the plan only says what to do. Keep the codes in step with stage.c.

export const Op = {
  // run by the stage itself (the parent)
  CLONE: 1,
  WRITE: 2,
  SPAWN: 3,
  RELEASE: 4,
  SUPERVISE: 5,
  CLEANUP: 6,
  STATUS: 7,
  DETACH: 8,
  RECORD: 9,
  JOIN: 10,
  HELPER: 11,
  API: 12,
  REJOIN: 13,
  // run by the child, inside the new namespaces
  PDEATHSIG: 32,
  DUMPABLE: 33,
  SETHOSTNAME: 34,
  ROOT: 35,
  MOUNT: 36,
  REMOUNT: 37,
  MASK: 38,
  MKDIR: 39,
  SYMLINK: 40,
  PIVOT: 41,
  LOOPBACK: 42,
  CONSOLE: 43,
  SETSID: 44,
  STDIN_NULL: 45,
  CHDIR: 46,
  SETGROUPS: 47,
  SETGID: 48,
  SETUID: 49,
  CAPBSET: 50,
  CAPSET: 51,
  NO_NEW_PRIVS: 52,
  RLIMIT: 53,
  CLOSE_FDS: 54,
  EXEC: 55,
  UMASK: 56,
  KEEPCAPS: 57,
  UNPACK: 58,
  RMTREE: 59,
  PACK: 60,
  UNSHARE: 61,
  MERGE: 62,
  AWAIT: 63,
} as const;
export type OpCode = (typeof Op)[keyof typeof Op];
const opName = Object.fromEntries(Object.entries(Op).map(([k, v]) => [v, k])) as Record<number, string>;

export const OpFlag = {
  OPTIONAL: 0x1,
  IGNORE_ENOENT: 0x2,
  SRC_IN_ROOT: 0x4,
  HOST_TARGET: 0x8,
  RECURSIVE_RO: 0x10,
  INIT: 0x20,
  JOIN_NS: 0x40,
  READY_MOUNT: 0x80,
  ROOT_FS: 0x100,
  GONE_QUIET: 0x200,
} as const;

/** The stage's status where a running container was not read in place, and nothing was written: gone when it was to be
 * joined (OpFlag.GONE_QUIET), or its root mount not to be had alone. */
export const STAGE_UNREAD = 3;

export const Supervise = { TTY: 0x1, STDIN: 0x2, AFTER: 0x4 } as const;
export const Create = { NONE: 0, DIR: 1, FILE: 2 } as const;

export interface PlanOp {
  code: OpCode;
  flags: number;
  ints: bigint[];
  strs: string[];
  /** What the op does, for error messages: "mount proc on /proc". A tab
   * separates an optional hint: "create user namespace\tset sysctl ...". */
  desc: string;
}

const MAGIC = 0x314b4e42; // "BNK1"

export class Plan {
  readonly ops: PlanOp[] = [];

  add(code: OpCode, desc: string, opts: { flags?: number; ints?: (number | bigint)[]; strs?: string[] } = {}): this {
    for (const s of opts.strs ?? []) {
      if (s.includes("\0")) throw new BunkerError(`${desc.split("\t")[0]}: a string holds a NUL byte`);
    }
    this.ops.push({
      code,
      flags: opts.flags ?? 0,
      ints: (opts.ints ?? []).map((n) => BigInt(n)),
      strs: opts.strs ?? [],
      desc,
    });
    return this;
  }

  /** The binary form stage.c parses: header, then per op
   * u16 code, u16 flags, u16 nint, u16 nstr, i64 ints[], then nstr+1
   * strings (the last is desc), each u32 length, bytes, NUL. */
  encode(): Uint8Array {
    let cap = 12; // UTF-8 takes at most 3 bytes per UTF-16 unit
    for (const op of this.ops) {
      if (op.ints.length > 0xffff || op.strs.length > 0xffff) throw new Error(`${op.desc}: too many arguments`);
      cap += 8 + 8 * op.ints.length + 5 + 3 * op.desc.length;
      for (const s of op.strs) cap += 5 + 3 * s.length;
    }
    const buf = new Uint8Array(cap);
    const dv = new DataView(buf.buffer);
    const enc = new TextEncoder();
    dv.setUint32(0, MAGIC, true);
    dv.setUint32(4, this.ops.length, true);
    let off = 12;
    const str = (s: string) => {
      const { written } = enc.encodeInto(s, buf.subarray(off + 4));
      dv.setUint32(off, written, true);
      off += 4 + written + 1; // the NUL is already there
    };
    for (const op of this.ops) {
      dv.setUint16(off, op.code, true);
      dv.setUint16(off + 2, op.flags, true);
      dv.setUint16(off + 4, op.ints.length, true);
      dv.setUint16(off + 6, op.strs.length, true);
      off += 8;
      for (const v of op.ints) (dv.setBigInt64(off, v, true), (off += 8));
      op.strs.forEach(str);
      str(op.desc);
    }
    return buf.subarray(0, off);
  }

  /** A readable listing, for BUNKER_PLAN=1 and for tests. */
  describe(): string {
    return this.ops
      .map((op, i) => {
        const who = op.code < 32 ? "stage" : "child";
        const args = [...op.ints.map(String), ...op.strs.map((s) => JSON.stringify(s))].join(" ");
        const flags = op.flags ? ` flags=0x${op.flags.toString(16)}` : "";
        return `${String(i).padStart(3)} ${who} ${opName[op.code]}${flags} ${args}  # ${op.desc.split("\t")[0]}`;
      })
      .join("\n");
  }
}

/** Decode an encoded plan; the inverse of encode(), used by tests. */
export function decodePlan(buf: Uint8Array): PlanOp[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dec = new TextDecoder();
  if (dv.getUint32(0, true) !== MAGIC) throw new Error("bad plan magic");
  const n = dv.getUint32(4, true);
  let off = 12;
  const ops: PlanOp[] = [];
  for (let i = 0; i < n; i++) {
    const code = dv.getUint16(off, true) as OpCode;
    const flags = dv.getUint16(off + 2, true);
    const nint = dv.getUint16(off + 4, true);
    const nstr = dv.getUint16(off + 6, true);
    off += 8;
    const ints: bigint[] = [];
    for (let k = 0; k < nint; k++, off += 8) ints.push(dv.getBigInt64(off, true));
    const strs: string[] = [];
    for (let k = 0; k <= nstr; k++) {
      const len = dv.getUint32(off, true);
      strs.push(dec.decode(buf.subarray(off + 4, off + 4 + len)));
      off += 4 + len + 1;
    }
    const desc = strs.pop()!;
    ops.push({ code, flags, ints, strs, desc });
  }
  if (off !== buf.length) throw new Error("trailing bytes in plan");
  return ops;
}

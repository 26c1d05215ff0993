// Transient scopes from systemd's user manager, as Podman gets them: one
// D-Bus call, StartTransientUnit, on the manager's private socket
// ($XDG_RUNTIME_DIR/systemd/private, the one systemctl --user uses), then
// the wait for the job's JobRemoved signal. The manager moves the given
// process into the new scope, and with Delegate=yes hands the scope's
// subtree to us. Only what that call needs of D-Bus is here: EXTERNAL
// authentication and little-endian messages. It writes y b u i s o g v a ( )
// and reads every type (the manager signals much we only skip).
import { BunkerError } from "../errors.ts";
import * as sys from "../linux/sys.ts";

/** A D-Bus value to send: a variant is [signature, value]. */
export type DbusValue = number | boolean | string | DbusValue[] | Variant;
export type Variant = { sig: string; value: DbusValue };

const ALIGN: Record<string, number> = { y: 1, n: 2, q: 2, b: 4, u: 4, i: 4, h: 4, x: 8, t: 8, d: 8, s: 4, o: 4, g: 1, v: 1, a: 4, "(": 8, "{": 8 };

/** The first complete type of a signature, and the rest. */
export function splitType(sig: string): [string, string] {
  let depth = 0;
  for (let i = 0; i < sig.length; i++) {
    const c = sig[i]!;
    if (c === "a") continue;
    if (c === "(" || c === "{") depth++;
    else if (c === ")" || c === "}") depth--;
    if (depth === 0) return [sig.slice(0, i + 1), sig.slice(i + 1)];
  }
  throw new Error(`bad D-Bus signature ${sig}`);
}

/** Fields of a struct "(...)" or dict entry "{..}" signature. */
function members(struct: string): string[] {
  const out: string[] = [];
  for (let rest = struct.slice(1, -1); rest; ) {
    const [t, r] = splitType(rest);
    out.push(t);
    rest = r;
  }
  return out;
}

export class Writer {
  buf = new Uint8Array(256);
  view = new DataView(this.buf.buffer);
  len = 0;
  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
    next.set(this.buf);
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  align(n: number): void {
    const pad = (n - (this.len % n)) % n;
    this.room(pad);
    this.buf.fill(0, this.len, this.len + pad);
    this.len += pad;
  }
  u8(v: number): void {
    this.room(1);
    this.buf[this.len++] = v;
  }
  u32(v: number): void {
    this.align(4);
    this.room(4);
    this.view.setUint32(this.len, v, true);
    this.len += 4;
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  write(type: string, v: DbusValue): void {
    const c = type[0]!;
    switch (c) {
      case "y":
        return this.u8(v as number);
      case "b":
        return this.u32(v ? 1 : 0);
      case "u":
      case "i":
        return this.u32((v as number) >>> 0);
      case "s":
      case "o": {
        const b = new TextEncoder().encode(v as string);
        this.u32(b.length);
        this.bytes(b);
        return this.u8(0);
      }
      case "g": {
        const b = new TextEncoder().encode(v as string);
        this.u8(b.length);
        this.bytes(b);
        return this.u8(0);
      }
      case "v": {
        const { sig, value } = v as Variant;
        this.write("g", sig);
        return this.write(sig, value);
      }
      case "a": {
        const elem = type.slice(1);
        this.u32(0);
        const at = this.len - 4;
        this.align(ALIGN[elem[0]!]!);
        const start = this.len;
        for (const e of v as DbusValue[]) this.write(elem, e);
        this.view.setUint32(at, this.len - start, true);
        return;
      }
      case "(": {
        this.align(8);
        const fields = members(type);
        fields.forEach((t, i) => this.write(t, (v as DbusValue[])[i]!));
        return;
      }
    }
    throw new Error(`D-Bus type ${type} is not supported`);
  }
}

export class Reader {
  private view: DataView;
  constructor(
    private buf: Uint8Array,
    public pos = 0,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  align(n: number): void {
    this.pos += (n - (this.pos % n)) % n;
  }
  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new Error("truncated D-Bus message");
  }
  private fixed<T>(n: number, get: (at: number) => T): T {
    this.align(n);
    this.need(n);
    const v = get(this.pos);
    this.pos += n;
    return v;
  }
  u32(): number {
    return this.fixed(4, (at) => this.view.getUint32(at, true));
  }
  private text(n: number): string {
    this.need(n + 1);
    const s = new TextDecoder().decode(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n + 1;
    return s;
  }
  read(type: string): DbusValue {
    switch (type[0]) {
      case "y":
        this.need(1);
        return this.buf[this.pos++]!;
      case "b":
        return this.u32() !== 0;
      case "u":
      case "h":
        return this.u32();
      case "i":
        return this.u32() | 0;
      case "n":
        return this.fixed(2, (at) => this.view.getInt16(at, true));
      case "q":
        return this.fixed(2, (at) => this.view.getUint16(at, true));
      case "x":
        return this.fixed(8, (at) => Number(this.view.getBigInt64(at, true)));
      case "t":
        return this.fixed(8, (at) => Number(this.view.getBigUint64(at, true)));
      case "d":
        return this.fixed(8, (at) => this.view.getFloat64(at, true));
      case "s":
      case "o":
        return this.text(this.u32());
      case "g":
        this.need(1);
        return this.text(this.buf[this.pos++]!);
      case "v": {
        const sig = this.read("g") as string;
        return { sig, value: this.read(sig) };
      }
      case "a": {
        const elem = type.slice(1);
        const n = this.u32();
        this.align(ALIGN[elem[0]!]!);
        const end = this.pos + n;
        this.need(n);
        const out: DbusValue[] = [];
        while (this.pos < end) out.push(this.read(elem));
        return out;
      }
      case "(":
      case "{":
        this.align(8);
        return members(type).map((t) => this.read(t));
    }
    throw new Error(`D-Bus type ${type} is not supported`);
  }
  readAll(sig: string): DbusValue[] {
    const out: DbusValue[] = [];
    for (let rest = sig; rest; ) {
      const [t, r] = splitType(rest);
      out.push(this.read(t));
      rest = r;
    }
    return out;
  }
}

export const enum MsgType {
  CALL = 1,
  RETURN = 2,
  ERROR = 3,
  SIGNAL = 4,
}

export interface Message {
  type: MsgType;
  serial: number;
  path?: string;
  iface?: string;
  member?: string;
  errorName?: string;
  replySerial?: number;
  signature: string;
  /** The body, decoded when asked for. */
  body(): DbusValue[];
}

const FIELD = { path: 1, iface: 2, member: 3, errorName: 4, replySerial: 5, destination: 6, sender: 7, signature: 8 } as const;

/** A method call, marshalled. */
export function encodeCall(serial: number, call: { path: string; iface: string; member: string; destination?: string; signature: string; body: DbusValue[] }): Uint8Array {
  const body = new Writer();
  let rest = call.signature;
  for (const v of call.body) {
    const [t, r] = splitType(rest);
    body.write(t, v);
    rest = r;
  }
  const fields: DbusValue[] = [
    [FIELD.path, { sig: "o", value: call.path }],
    [FIELD.iface, { sig: "s", value: call.iface }],
    [FIELD.member, { sig: "s", value: call.member }],
    ...(call.destination ? [[FIELD.destination, { sig: "s", value: call.destination }] as DbusValue] : []),
    [FIELD.signature, { sig: "g", value: call.signature }],
  ];
  const w = new Writer();
  for (const b of [0x6c, MsgType.CALL, 0, 1]) w.u8(b); // 'l'ittle endian, a call, no flags, protocol 1
  w.u32(body.len);
  w.u32(serial);
  w.write("a(yv)", fields);
  w.align(8);
  w.bytes(body.buf.subarray(0, body.len));
  return w.buf.slice(0, w.len);
}

/** The length of the first message in buf, once its fixed header is there. */
export function messageLength(buf: Uint8Array): number | undefined {
  if (buf.length < 16) return undefined;
  if (buf[0] !== 0x6c) throw new Error("a big-endian D-Bus peer is not supported");
  const v = new DataView(buf.buffer, buf.byteOffset, 16);
  const fields = v.getUint32(12, true);
  const header = 16 + fields + ((8 - ((16 + fields) % 8)) % 8);
  return header + v.getUint32(4, true);
}

export function decodeMessage(buf: Uint8Array): Message {
  const r = new Reader(buf);
  r.pos = 1;
  const type = r.read("y") as MsgType;
  r.pos = 8;
  const serial = r.u32();
  const m: Message = { type, serial, signature: "", body: () => [] };
  for (const f of r.read("a(yv)") as [number, Variant][]) {
    const value = f[1].value;
    if (f[0] === FIELD.path) m.path = value as string;
    else if (f[0] === FIELD.iface) m.iface = value as string;
    else if (f[0] === FIELD.member) m.member = value as string;
    else if (f[0] === FIELD.errorName) m.errorName = value as string;
    else if (f[0] === FIELD.replySerial) m.replySerial = value as number;
    else if (f[0] === FIELD.signature) m.signature = value as string;
  }
  r.align(8);
  // the body's alignment counts from its own start
  const body = buf.subarray(r.pos);
  m.body = () => new Reader(body).readAll(m.signature);
  return m;
}

/** The user manager's private socket, when it runs. */
export function userManagerSocket(env = process.env): string | undefined {
  const dir = env.XDG_RUNTIME_DIR;
  const path = dir ? `${dir}/systemd/private` : undefined;
  return path && sys.stat(path)?.kind === "other" ? path : undefined;
}

/** A connection to the manager: send calls, read messages in order. */
async function connect(path: string, timeoutMs: number) {
  let pending = new Uint8Array(0);
  let wake: (() => void) | undefined;
  let closed: string | undefined;
  // what the socket did not take yet: Bun's write may take part, the rest goes on drain
  let unsent = new Uint8Array(0);
  const flush = (s: { write(b: Uint8Array): number }) => {
    const n = unsent.length ? s.write(unsent) : 0;
    if (n > 0) unsent = unsent.subarray(n);
  };
  const socket = await Bun.connect({
    unix: path,
    socket: {
      drain: flush,
      data(_s, chunk) {
        const next = new Uint8Array(pending.length + chunk.length);
        next.set(pending);
        next.set(chunk, pending.length);
        pending = next;
        wake?.();
      },
      close() {
        closed ??= "the manager closed the connection";
        wake?.();
      },
      error(_s, e) {
        closed = e.message;
        wake?.();
      },
    },
  });
  const deadline = Date.now() + timeoutMs;
  const more = () =>
    new Promise<void>((resolve, reject) => {
      if (closed) return reject(new Error(closed));
      const left = deadline - Date.now();
      if (left <= 0) return reject(new Error(`no answer within ${timeoutMs / 1000} s`));
      const t = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), left);
      wake = () => {
        clearTimeout(t);
        wake = undefined;
        resolve();
      };
    });
  const take = (n: number) => {
    const out = pending.subarray(0, n);
    pending = pending.subarray(n);
    return out;
  };
  return {
    send: (b: Uint8Array | string) => {
      const bytes = typeof b === "string" ? new TextEncoder().encode(b) : b;
      const next = new Uint8Array(unsent.length + bytes.length);
      next.set(unsent);
      next.set(bytes, unsent.length);
      unsent = next;
      flush(socket);
    },
    async line(): Promise<string> {
      for (;;) {
        const nl = pending.indexOf(0x0a);
        if (nl >= 0) return new TextDecoder().decode(take(nl + 1)).trimEnd();
        await more();
      }
    },
    async message(): Promise<Message> {
      for (;;) {
        const n = messageLength(pending);
        if (n !== undefined && pending.length >= n) return decodeMessage(take(n));
        await more();
      }
    },
    close: () => socket.end(),
  };
}

/**
 * Ask the user manager for a transient scope holding `pid`, and wait until
 * it is started (the process is in it). `delegate`: the scope's subtree is
 * ours to manage. Throws a BunkerError naming what failed.
 */
export async function startScope(unit: string, pid: number, opts: { delegate: boolean; description: string; socket: string; timeoutMs?: number }): Promise<void> {
  const fail = (why: string) => new BunkerError(`cannot start the systemd scope ${unit} (systemd user manager at ${opts.socket}): ${why}`);
  let conn: Awaited<ReturnType<typeof connect>>;
  try {
    conn = await connect(opts.socket, opts.timeoutMs ?? 10_000);
  } catch (e) {
    throw fail(String((e as Error).message ?? e));
  }
  try {
    const uid = String(process.getuid!());
    conn.send(`\0AUTH EXTERNAL ${Buffer.from(uid).toString("hex")}\r\n`);
    const ok = await conn.line();
    if (!ok.startsWith("OK ")) throw fail(`authentication refused (${ok})`);
    conn.send("BEGIN\r\n");
    const props: DbusValue[] = [
      ["Description", { sig: "s", value: opts.description }],
      ["PIDs", { sig: "au", value: [pid] }],
      ["CollectMode", { sig: "s", value: "inactive-or-failed" }],
      ...(opts.delegate ? [["Delegate", { sig: "b", value: true }] as DbusValue] : []),
    ];
    conn.send(
      encodeCall(1, {
        path: "/org/freedesktop/systemd1",
        iface: "org.freedesktop.systemd1.Manager",
        member: "StartTransientUnit",
        destination: "org.freedesktop.systemd1",
        signature: "ssa(sv)a(sa(sv))",
        body: [unit, "fail", props, []],
      }),
    );
    // the job's end may be signalled before or after the call's answer
    let job: string | undefined;
    const done = new Map<string, string>();
    for (;;) {
      const m = await conn.message();
      if (m.replySerial === 1 && m.type === MsgType.ERROR) throw fail(`${m.errorName}: ${m.body()[0] ?? ""}`);
      if (m.replySerial === 1 && m.type === MsgType.RETURN) job = m.body()[0] as string;
      if (m.type === MsgType.SIGNAL && m.member === "JobRemoved") {
        const [, path, , result] = m.body();
        done.set(path as string, result as string);
      }
      const result = job && done.get(job);
      if (result === "done") return;
      if (result) throw fail(`its start job ended "${result}" (journalctl --user -u ${unit} may say why)`);
    }
  } catch (e) {
    throw e instanceof BunkerError ? e : fail(String((e as Error).message ?? e));
  } finally {
    conn.close();
  }
}

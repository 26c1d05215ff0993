import { BunkerError } from "../errors.ts";
import { parseCli } from "./args.ts";
import type { Command } from "./command.ts";

const logsArgs = {
  container: { type: "positional", description: "The container", valueHint: "NAME|ID" },
  follow: { type: "boolean", alias: "f", description: "Keep printing new output until the container stops" },
  tail: { type: "string", alias: "n", description: "Print only the last N lines", valueHint: "N" },
  since: { type: "string", description: "Only output since a time (RFC 3339) or for a duration (10m, 1h30m)", valueHint: "TIME" },
  timestamps: { type: "boolean", alias: "t", description: "Show each line's timestamp" },
} as const;

/** One line of the log (CRI format): "TIME STREAM F|P TEXT". */
export interface LogLine {
  time: string;
  stream: "stdout" | "stderr";
  text: string;
}

/** Parse log text; partial (P) records join the next, and a last partial stays without a newline. */
export function parseLog(text: string, pending: LogLine | undefined = undefined): { lines: LogLine[]; pending?: LogLine } {
  const lines: LogLine[] = [];
  for (const rec of text.split("\n")) {
    const m = rec.match(/^(\S+) (stdout|stderr) ([FP]) (.*)$/s);
    if (!m) continue;
    const [, time, stream, tag, body] = m as unknown as [string, string, "stdout" | "stderr", string, string];
    const line = pending && pending.stream === stream ? { ...pending, text: pending.text + body } : { time, stream, text: body };
    if (pending && pending.stream !== stream) lines.push(pending);
    pending = undefined;
    if (tag === "F") lines.push({ ...line, text: line.text + "\n" });
    else pending = line;
  }
  return { lines, pending };
}

/** --since: an RFC 3339 time, Unix seconds, or a duration back from now (1h30m, 10m, 45s). */
export function sinceTime(s: string, now = Date.now()): number {
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s) * 1000;
  const d = s.match(/^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/);
  if (d && s !== "") return now - ((Number(d[1] ?? 0) * 60 + Number(d[2] ?? 0)) * 60 + Number(d[3] ?? 0)) * 1000;
  const t = Date.parse(s);
  if (Number.isNaN(t)) throw new BunkerError(`invalid --since "${s}": use a time like 2026-11-27T10:00:00Z, or a duration like 10m`);
  return t;
}

export default {
  def: { meta: { name: "logs", description: "Print the output of a detached container" }, args: logsArgs },
  async run(rawArgs) {
    const { values: v, positionals } = parseCli(logsArgs, rawArgs, { verb: "logs" });
    if (positionals.length !== 1) throw new BunkerError("logs needs one container: bunker logs [OPTIONS] NAME|ID");
    const tail = v.tail as string | undefined;
    if (tail !== undefined && !/^\d+$/.test(tail) && tail !== "all") throw new BunkerError(`invalid --tail "${tail}": give a number of lines`);
    const since = v.since === undefined ? undefined : sinceTime(v.since as string);
    const sys = await import("../linux/sys.ts");
    const c = await import("../runtime/containers.ts");
    const view = c.find(positionals[0]!);
    const rt = view.runtime;
    if (!rt?.config.detached) throw new BunkerError(`container ${positionals[0]} has no log: only detached containers (run -d) are logged`);
    const log = `${rt.dir}/log`;
    const enc = new TextEncoder();
    const print = (lines: LogLine[]) => {
      for (const l of lines) {
        if (since !== undefined && Date.parse(l.time) < since) continue;
        sys.writeAll(l.stream === "stdout" ? 1 : 2, enc.encode(v.timestamps ? `${l.time} ${l.text}` : l.text));
      }
    };
    // whole records only: a record being written stays in carry until its newline
    const dec = new TextDecoder();
    let carry = "";
    let pending: LogLine | undefined;
    const feed = (text: string) => {
      const all = carry + text;
      const cut = all.lastIndexOf("\n") + 1;
      carry = all.slice(cut);
      const out = parseLog(all.slice(0, cut), pending);
      pending = out.pending;
      return out.lines;
    };
    const readFrom = async (path: string, start: number, end: number) => {
      const lines: LogLine[] = [];
      if (end > start) for await (const chunk of sys.readChunks(sys.openRead(path), { start, end })) lines.push(...feed(dec.decode(chunk, { stream: true })));
      return lines;
    };
    let st = sys.stat(log);
    let ino = st?.ino;
    let offset = st?.size ?? 0;
    const old = sys.stat(`${log}.1`);
    const first = [...(old ? await readFrom(`${log}.1`, 0, old.size) : []), ...(await readFrom(log, 0, offset))];
    // without -f, a last line without its newline is a line too
    if (!v.follow && pending) first.push(pending), (pending = undefined);
    print(tail === undefined || tail === "all" ? first : first.slice(Math.max(0, first.length - Number(tail))));
    if (v.follow) {
      // read on from where we are; a rotation (a new inode, or a shorter file) starts again from 0
      for (let done = view.status !== "running"; ; done = await c.waitStopped(rt, 100)) {
        st = sys.stat(log);
        if (st && st.ino !== ino) {
          const moved = sys.stat(`${log}.1`);
          if (moved && moved.ino === ino && moved.size > offset) print(await readFrom(`${log}.1`, offset, moved.size));
        }
        if (st && (st.ino !== ino || st.size < offset)) (ino = st.ino), (offset = 0);
        if (st && st.size > offset) {
          print(await readFrom(log, offset, st.size));
          offset = st.size;
        }
        if (done) break;
      }
    }
    if (pending) print([pending]);
  },
} satisfies Command<typeof logsArgs>;

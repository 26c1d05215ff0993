// The verbs on a running container's cgroup: stats, update, pause, unpause.
import { BunkerError } from "../errors.ts";
import { parseCli } from "./args.ts";
import { type Command, each } from "./command.ts";
import { limitArgs, limitFlags } from "./limits.ts";
import { table } from "./table.ts";

async function cgroupOf(ref: string, verb: string): Promise<{ name: string; dir: string; id: string; state: string }> {
  const c = await import("../runtime/containers.ts");
  const rt = c.mustRun(c.find(ref), verb);
  if (!rt.config.cgroup) {
    throw new BunkerError(`container ${ref} has no cgroup of its own: this host delegates no cgroup v2 subtree to you, so ${verb} cannot work (see 'bunker run --memory')`);
  }
  return { name: rt.config.name ?? rt.id.slice(0, 12), dir: rt.config.cgroup, id: rt.id, state: rt.dir };
}


const updateArgs = { containers: { type: "positional", description: "Running containers", valueHint: "NAME|ID..." }, ...limitArgs } as const;

export const update = {
  def: { meta: { name: "update", description: "Change the limits of running containers" }, args: updateArgs },
  async run(rawArgs) {
    const { values: v, positionals } = parseCli(updateArgs, rawArgs, { verb: "update" });
    if (positionals.length === 0) throw new BunkerError("update needs a container: bunker update [OPTIONS] NAME|ID...");
    const { cgroupFiles, resourcesFromFlags } = await import("../runtime/cgroup.ts");
    const flags = limitFlags(v);
    const r = resourcesFromFlags(flags);
    if (!r) throw new BunkerError("update needs a limit to change, like --memory 256m or --cpus 1");
    const sys = await import("../linux/sys.ts");
    const { updateConfig } = await import("../runtime/state.ts");
    for (const ref of positionals) {
      const cg = await cgroupOf(ref, "update");
      for (const [file, value] of cgroupFiles(r).files) {
        try {
          sys.writeExisting(`${cg.dir}/${file}`, value);
        } catch (e) {
          throw new BunkerError(`cannot set ${file} of container ${ref} to ${value}: ${e instanceof sys.SysError ? e.reason : e}`);
        }
      }
      // kept, as Docker keeps them: a restart applies the new limits too
      updateConfig(cg.state, (cfg) => {
        cfg.flags.limits = { ...cfg.flags.limits, ...Object.fromEntries(Object.entries(flags).filter(([, x]) => x !== undefined)) };
        const linux = (cfg.spec.linux ??= {});
        const old = (linux.resources ?? {}) as Record<string, object>;
        linux.resources = Object.fromEntries([...new Set([...Object.keys(old), ...Object.keys(r)])].map((k) => [k, { ...old[k], ...(r as Record<string, object>)[k] }]));
      });
      console.log(ref);
    }
  },
} satisfies Command<typeof updateArgs>;

const refs = { containers: { type: "positional", description: "Running containers", valueHint: "NAME|ID..." } } as const;

/** Freeze or thaw through cgroup.freeze, and wait until the kernel says it is done. */
async function freeze(rawArgs: string[], verb: "pause" | "unpause"): Promise<void> {
  const { positionals } = parseCli(refs, rawArgs, { verb });
  const sys = await import("../linux/sys.ts");
  const want = verb === "pause" ? "1" : "0";
  await each(verb, positionals, async (ref) => {
    const cg = await cgroupOf(ref, verb);
    sys.writeExisting(`${cg.dir}/cgroup.freeze`, want);
    for (let i = 0; i < 200 && !new RegExp(`^frozen ${want}$`, "m").test(sys.tryRead(`${cg.dir}/cgroup.events`) ?? ""); i++) await Bun.sleep(10);
  });
}

export const pause = {
  def: { meta: { name: "pause", description: "Freeze every process of running containers (cgroup.freeze)" }, args: refs },
  run: (rawArgs) => freeze(rawArgs, "pause"),
} satisfies Command<typeof refs>;

export const unpause = {
  def: { meta: { name: "unpause", description: "Thaw paused containers" }, args: refs },
  run: (rawArgs) => freeze(rawArgs, "unpause"),
} satisfies Command<typeof refs>;

const statsArgs = {
  containers: { type: "positional", required: false, description: "Containers (default: all running)", valueHint: "NAME|ID..." },
  "no-stream": { type: "boolean", description: "Print one sample and exit" },
  json: { type: "boolean", description: "Print JSON" },
} as const;

export interface Sample {
  id: string;
  name: string;
  cpuPercent: number;
  memoryBytes: number;
  memoryLimit: number | null;
  pids: number;
  ioReadBytes: number;
  ioWriteBytes: number;
}

/** io.stat lines ("8:0 rbytes=1 wbytes=2 ...") summed. */
export function ioBytes(stat: string): { read: number; write: number } {
  let read = 0, write = 0;
  for (const m of stat.matchAll(/rbytes=(\d+)/g)) read += Number(m[1]);
  for (const m of stat.matchAll(/wbytes=(\d+)/g)) write += Number(m[1]);
  return { read, write };
}

const human = (n: number) => (n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(2)}GiB` : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)}MiB` : `${(n / 1024).toFixed(1)}KiB`);

export const stats = {
  def: { meta: { name: "stats", description: "CPU, memory, pids and I/O of running containers" }, args: statsArgs },
  async run(rawArgs) {
    const { values, positionals } = parseCli(statsArgs, rawArgs, { verb: "stats" });
    const sys = await import("../linux/sys.ts");
    const c = await import("../runtime/containers.ts");
    const refs = positionals.length ? positionals : c.list().filter((v) => v.status === "running" && v.runtime?.config.cgroup).map((v) => v.id);
    const groups = await Promise.all(refs.map((r) => cgroupOf(r, "stats")));
    const read = (dir: string, f: string) => sys.tryRead(`${dir}/${f}`) ?? "";
    const usage = (dir: string) => Number(read(dir, "cpu.stat").match(/^usage_usec (\d+)$/m)?.[1] ?? 0);
    for (;;) {
      const before = groups.map((g) => usage(g.dir));
      const t0 = performance.now();
      await Bun.sleep(1000);
      const secs = (performance.now() - t0) / 1000;
      const samples: Sample[] = groups.map((g, i) => {
        const max = read(g.dir, "memory.max").trim();
        const io = ioBytes(read(g.dir, "io.stat"));
        return {
          id: g.id,
          name: g.name,
          cpuPercent: Math.round(((usage(g.dir) - before[i]!) / 1e6 / secs) * 1000) / 10,
          memoryBytes: Number(read(g.dir, "memory.current").trim() || 0),
          memoryLimit: max === "max" || max === "" ? null : Number(max),
          pids: Number(read(g.dir, "pids.current").trim() || 0),
          ioReadBytes: io.read,
          ioWriteBytes: io.write,
        };
      });
      if (values.json) console.log(JSON.stringify(samples));
      else {
        const rows = [["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "PIDS", "BLOCK I/O"]];
        for (const s of samples) rows.push([s.id.slice(0, 12), s.name, `${s.cpuPercent.toFixed(1)}%`, `${human(s.memoryBytes)} / ${s.memoryLimit === null ? "unlimited" : human(s.memoryLimit)}`, String(s.pids), `${human(s.ioReadBytes)} / ${human(s.ioWriteBytes)}`]);
        console.log(table(rows));
      }
      if (values["no-stream"]) return;
    }
  },
} satisfies Command<typeof statsArgs>;

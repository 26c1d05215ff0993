// The verbs on existing containers that change their state: rm, stop, kill,
// restart, wait. Each takes one or more NAME|ID and prints each as it is done.
import { BunkerError } from "../errors.ts";
import { parseCli } from "./args.ts";
import { type Command, each } from "./command.ts";

const refs = { type: "positional", description: "Containers", valueHint: "NAME|ID..." } as const;

function seconds(s: string | undefined, fallback: number): number {
  if (s === undefined) return fallback;
  if (!/^\d+$/.test(s)) throw new BunkerError(`invalid --time "${s}": give whole seconds`);
  return Number(s);
}

const rmArgs = {
  containers: refs,
  force: { type: "boolean", alias: "f", description: "Kill a running container, then remove it" },
} as const;

export const rm = {
  def: { meta: { name: "rm", description: "Remove containers and their files" }, args: rmArgs },
  async run(rawArgs) {
    const { values, positionals } = parseCli(rmArgs, rawArgs, { verb: "rm" });
    const c = await import("../runtime/containers.ts");
    await each("rm", positionals, (ref) => c.remove(c.find(ref), values.force as boolean));
  },
} satisfies Command<typeof rmArgs>;

const stopArgs = {
  containers: refs,
  time: { type: "string", alias: "t", description: "Seconds to wait for it to stop before killing it (default 10)", valueHint: "SECS" },
} as const;

export const stop = {
  def: { meta: { name: "stop", description: "Stop running containers: SIGTERM (or the image's StopSignal), then SIGKILL" }, args: stopArgs },
  async run(rawArgs) {
    const { values, positionals } = parseCli(stopArgs, rawArgs, { verb: "stop" });
    const grace = seconds(values.time as string | undefined, 10);
    const c = await import("../runtime/containers.ts");
    await each("stop", positionals, async (ref) => {
      const v = c.find(ref);
      if (v.status === "running") await c.stop(v.runtime!, grace, c.stopSignal(v.runtime!));
    });
  },
} satisfies Command<typeof stopArgs>;

const killArgs = {
  containers: refs,
  signal: { type: "string", alias: "s", description: "The signal to send (default KILL)", valueHint: "SIG" },
} as const;

export const kill = {
  def: { meta: { name: "kill", description: "Send a signal to running containers" }, args: killArgs },
  async run(rawArgs) {
    const { values, positionals } = parseCli(killArgs, rawArgs, { verb: "kill" });
    const c = await import("../runtime/containers.ts");
    const sig = c.signalNumber((values.signal as string | undefined) ?? "KILL");
    await each("kill", positionals, async (ref) => {
      const rt = c.mustRun(c.find(ref), "kill");
      if (!c.signal(rt, sig)) throw new BunkerError(`container ${ref} is not running: cannot kill it`);
    });
  },
} satisfies Command<typeof killArgs>;

export const restart = {
  def: { meta: { name: "restart", description: "Stop containers, then start them again in the background" }, args: stopArgs },
  async run(rawArgs) {
    const { values, positionals } = parseCli(stopArgs, rawArgs, { verb: "restart" });
    const grace = seconds(values.time as string | undefined, 10);
    const c = await import("../runtime/containers.ts");
    const { run } = await import("../runtime/run.ts");
    await each("restart", positionals, async (ref) => {
      const v = c.find(ref);
      // as it was started: from its runtime state, or (that gone: a foreground run, a reboot) from the store's record
      const cfg = v.runtime?.config ?? (v.stored?.run && { ...v.stored.run, name: v.stored.name });
      if (!cfg) throw new BunkerError(`container ${ref} cannot be restarted: its runtime state is gone, and nothing else says how it was started; run its image again`);
      if (v.runtime?.config.image && !v.stored) throw new BunkerError(`container ${ref} cannot be restarted: its files are gone from the store (a removal was cut short); remove it: 'bunker rm ${ref}'`);
      if (v.status === "running") await c.stop(v.runtime!, grace, c.stopSignal(v.runtime!));
      await run(cfg.target, cfg.command, { ...cfg.flags, name: cfg.name, detach: true, rm: false }, { id: v.id, created: v.created, fromImage: v.stored !== undefined });
    });
  },
} satisfies Command<typeof stopArgs>;

const waitArgs = { containers: refs } as const;

export const wait = {
  def: { meta: { name: "wait", description: "Wait for containers to stop, then print their exit codes" }, args: waitArgs },
  async run(rawArgs) {
    const { positionals } = parseCli(waitArgs, rawArgs, { verb: "wait" });
    const c = await import("../runtime/containers.ts");
    await each("wait", positionals, async (ref) => {
      const v = c.find(ref);
      if (v.runtime) await c.waitStopped(v.runtime);
      const { takeExitRecord } = await import("../runtime/state.ts");
      const code = c.exitCode(v) ?? takeExitRecord(v.id)?.code;
      if (code === undefined) throw new BunkerError(`container ${ref} is gone: it was removed before it could be waited for`);
      return String(code);
    });
  },
} satisfies Command<typeof waitArgs>;

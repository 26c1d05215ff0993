import { BunkerError } from "../errors.ts";
import { parseCli } from "./args.ts";
import type { Command } from "./command.ts";

const execArgs = {
  container: { type: "positional", description: "The running container", valueHint: "NAME|ID" },
  command: { type: "positional", description: "The command and its arguments", valueHint: "COMMAND [ARG...]" },
  interactive: { type: "boolean", alias: "i", description: "Keep stdin open" },
  tty: { type: "boolean", alias: "t", description: "Allocate a pseudo-terminal" },
  detach: { type: "boolean", alias: "d", description: "Run the command in the background" },
  env: { type: "string", alias: "e", description: "Set an environment variable (repeatable)", valueHint: "NAME=VALUE" },
  workdir: { type: "string", alias: "w", description: "Working directory inside the container", valueHint: "DIR" },
  user: { type: "string", alias: "u", description: "User to run as (name or UID, with an optional :GROUP)", valueHint: "UID[:GID]" },
} as const;

export default {
  def: { meta: { name: "exec", description: "Run a command in a running container" }, args: execArgs },
  async run(rawArgs) {
    const { values: v, positionals } = parseCli(execArgs, rawArgs, { verb: "exec", stopAtPositional: true, repeatable: ["env"] });
    const [ref, ...command] = positionals;
    if (!ref || command.length === 0) throw new BunkerError("exec needs a container and a command: bunker exec [OPTIONS] CONTAINER COMMAND [ARG...]");
    const sys = await import("../linux/sys.ts");
    const tty = v.tty as boolean, interactive = v.interactive as boolean, detach = v.detach as boolean;
    if (tty && interactive && !detach && !sys.isatty(0)) throw new BunkerError("the input device is not a TTY: drop -t, or run from a terminal");
    const c = await import("../runtime/containers.ts");
    const view = c.find(ref);
    const rt = c.mustRun(view, "exec into");
    if (view.paused) throw new BunkerError(`container ${ref} is paused: unpause it first`);
    const { execProcess } = await import("../spec/build.ts");
    const { compileExec } = await import("../linux/compile.ts");
    const { detachStage, execStage } = await import("../linux/stage.ts");
    const { identity } = await import("../runtime/host.ts");
    const spec = rt.config.spec;
    const pids = rt.pids!;
    const proc = execProcess(
      spec,
      command,
      { env: v.env as string[], workdir: v.workdir as string | undefined, user: v.user as string | undefined, tty: tty && !detach },
      (path) => sys.readInRoot(`/proc/${pids.pid}/root`, path),
      process.env,
    );
    // the same checks as run's: a user outside the container's id maps, say
    const { validateSpec } = await import("../spec/validate.ts");
    const errs = validateSpec({ ...spec, process: proc });
    if (errs.length) throw new BunkerError(errs[0]!);
    const who = identity();
    if (rt.config.cgroup) await (await import("../runtime/cgroup.ts")).reachCgroup(rt.config.cgroup);
    const plan = compileExec(spec, proc, { pid: pids.pid, starttime: pids.pidStart }, { interactive, detach }, who, rt.config.cgroup);
    const root = rt.dir.slice(0, rt.dir.indexOf("/containers/"));
    if (!detach) await execStage(plan, root);
    const started = await detachStage(plan, root);
    if (!started.ok) throw new BunkerError(started.message, started.code);
  },
} satisfies Command<typeof execArgs>;

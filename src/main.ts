// bunker: a rootless container runtime in one executable.
// Start-up is kept lean: each verb's module loads only when that verb runs,
// and nothing touches process.stdout/stderr (that alone costs Bun ~20 ms).
import type { CommandDef } from "citty";
import { HelpRequest } from "./cli/args.ts";
import type { Command } from "./cli/command.ts";
import { BunkerError, ReportedError } from "./errors.ts";
import { oneLine, say } from "./log.ts";

declare const BUNKER_VERSION: string;
export const VERSION = typeof BUNKER_VERSION === "string" ? BUNKER_VERSION : "dev";

/** A verb that is one of several exports of its module. */
const named =
  <M, K extends keyof M>(load: () => Promise<M>, name: K) =>
  () =>
    load().then((m) => ({ default: m[name] as Command<any> }));
const lifecycle = () => import("./cli/lifecycle.ts");
const resources = () => import("./cli/resources.ts");

const VERBS: Record<string, () => Promise<{ default: Command<any> }>> = {
  run: () => import("./cli/run.ts"),
  import: () => import("./cli/import.ts"),
  export: () => import("./cli/export.ts"),
  images: () => import("./cli/images.ts"),
  rmi: () => import("./cli/rmi.ts"),
  tag: () => import("./cli/tag.ts"),
  ps: () => import("./cli/ps.ts"),
  rm: named(lifecycle, "rm"),
  stop: named(lifecycle, "stop"),
  kill: named(lifecycle, "kill"),
  restart: named(lifecycle, "restart"),
  wait: named(lifecycle, "wait"),
  logs: () => import("./cli/logs.ts"),
  exec: () => import("./cli/exec.ts"),
  inspect: () => import("./cli/inspect.ts"),
  stats: named(resources, "stats"),
  update: named(resources, "update"),
  pause: named(resources, "pause"),
  unpause: named(resources, "unpause"),
  spec: () => import("./cli/spec.ts"),
};

const root: CommandDef = {
  meta: { name: "bunker", version: VERSION, description: "A rootless Linux container runtime" },
  subCommands: Object.fromEntries(Object.entries(VERBS).map(([k, load]) => [k, async () => (await load()).default.def])),
};

async function usage(cmd: CommandDef<any>, parent?: CommandDef): Promise<void> {
  // citty colours its help unless told otherwise; a pipe gets plain text
  const { isatty } = await import("./linux/sys.ts");
  if (!isatty(1)) process.env.NO_COLOR = "1";
  const { renderUsage } = await import("citty");
  console.log(await renderUsage(cmd, parent));
}

/** The message, one line (an internal error's stack aside), and the exit status. */
function fail(message: string, code: number, stack?: string): never {
  say(`bunker: ${oneLine(message)}${stack ? `\n${stack}` : ""}`);
  process.exit(code);
}

async function main(argv: string[]): Promise<void> {
  const [verb, ...rest] = argv;
  if (verb === undefined || verb === "--help" || verb === "help") return usage(root);
  if (verb === "--version" || verb === "version") return console.log(`bunker ${VERSION}`);
  if (!Object.hasOwn(VERBS, verb)) fail(`unknown command "${verb}" (see 'bunker --help')`, 125);
  const cmd = (await VERBS[verb]!()).default;
  try {
    await cmd.run(rest);
  } catch (e) {
    if (e instanceof HelpRequest) return usage(cmd.def, root);
    throw e;
  }
}

// A command whose promise never settles would let the process exit 0 once
// nothing is left to wait for: that is a bug, and must not look like success.
let settled = false;
process.on("beforeExit", () => settled || fail("internal error: the command stopped without finishing", 125));

main(process.argv.slice(2)).then(
  () => (settled = true),
  async (e: unknown) => {
    if (e instanceof ReportedError) process.exit(e.exitCode);
    if (e instanceof BunkerError) fail(e.message, e.exitCode);
    // a system call that failed where no caller said what it meant (ours, or one of Bun's
    // own file functions): still one line, naming the call and the file
    const { SysError } = await import("./linux/sys.ts");
    if (e instanceof SysError || /^E[A-Z]+$/.test(String((e as { code?: unknown } | undefined)?.code))) fail((e as Error).message, 125);
    fail(`internal error: ${(e as Error)?.message ?? e}`, 125, (e as Error)?.stack);
  },
);

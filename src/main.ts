// bunker: a rootless container runtime in one executable.
// Startup is kept lean: each verb's module loads only when that verb runs.
import type { CommandDef } from "citty";
import { BunkerError } from "./errors.ts";
import { say } from "./log.ts";

declare const BUNKER_VERSION: string;
export const VERSION = typeof BUNKER_VERSION === "string" ? BUNKER_VERSION : "dev";

const VERBS: Record<string, () => Promise<{ default: CommandDef<any> }>> = {
  run: () => import("./cli/run.ts"),
  spec: () => import("./cli/spec.ts"),
};

const root = {
  meta: { name: "bunker", version: VERSION, description: "A rootless Linux container runtime" },
  subCommands: Object.fromEntries(Object.entries(VERBS).map(([k, load]) => [k, async () => (await load()).default])),
} satisfies CommandDef;

async function usage(cmd: CommandDef<any>, parent?: CommandDef<any>): Promise<void> {
  // citty colours its help unless told otherwise; a pipe gets plain text
  const { isatty } = await import("./linux/sys.ts");
  if (!isatty(1)) process.env.NO_COLOR = "1";
  const { renderUsage } = await import("citty");
  console.log(await renderUsage(cmd, parent));
}

// Not process.stdout/stderr: touching them costs Bun ~20 ms of start-up.
function fail(message: string, code: number): never {
  say(`bunker: ${message}`);
  process.exit(code);
}

async function main(argv: string[]): Promise<void> {
  const [verb, ...rest] = argv;
  if (verb === undefined || verb === "--help" || verb === "help") return usage(root);
  if (verb === "--version" || verb === "version") {
    console.log(`bunker ${VERSION}`);
    return;
  }
  const load = VERBS[verb];
  if (!load) fail(`unknown command "${verb}" (see 'bunker --help')`, 125);
  const cmd = (await load()).default;
  // help only counts before the first positional: `run ROOTFS ls --help` is ls's
  const firstPositional = rest.findIndex((a) => !a.startsWith("-"));
  const optionPart = firstPositional < 0 ? rest : rest.slice(0, firstPositional);
  if (optionPart.includes("--help")) return usage(cmd, root);
  await cmd.run!({ rawArgs: rest, args: { _: rest }, cmd, data: undefined } as never);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  if (e instanceof BunkerError) fail(e.message, e.exitCode);
  fail(`internal error: ${(e as Error)?.stack ?? e}`, 125);
});

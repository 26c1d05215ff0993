import { BunkerError } from "../errors.ts";
import type { RunFlags } from "../spec/build.ts";
import { parseCli } from "./args.ts";
import type { Command } from "./command.ts";
import { limitArgs, limitFlags } from "./limits.ts";

export const runArgs = {
  target: { type: "positional", description: "A root filesystem directory, an OCI bundle (a directory with config.json), or an image of the store", valueHint: "ROOTFS|BUNDLE|IMAGE" },
  command: { type: "positional", required: false, description: "The command and its arguments (default: the bundle's, or sh)", valueHint: "COMMAND [ARG...]" },
  env: { type: "string", alias: "e", description: "Set an environment variable (NAME=VALUE, or NAME to pass yours)", valueHint: "NAME=VALUE" },
  "env-file": { type: "string", description: "Read environment variables from a file", valueHint: "FILE" },
  entrypoint: { type: "string", description: "Run this instead of the image's Entrypoint, and not its Cmd (\"\": none; the command is then needed)", valueHint: "CMD" },
  workdir: { type: "string", alias: "w", description: "Working directory inside the container", valueHint: "DIR" },
  user: { type: "string", alias: "u", description: "User to run as (name or UID, with an optional :GROUP)", valueHint: "UID[:GID]" },
  hostname: { type: "string", alias: "h", description: "Container host name (default: the id's first 12 characters)", valueHint: "NAME" },
  volume: { type: "string", alias: "v", description: "Bind a host path (repeatable)", valueHint: "SRC:DST[:ro]" },
  tmpfs: { type: "string", description: "Mount a tmpfs (repeatable)", valueHint: "DST[:OPTS]" },
  "read-only": { type: "boolean", description: "Mount the root filesystem read-only" },
  network: { type: "string", description: "pasta (the default when installed), slirp4netns, none (lo only) or host", valueHint: "MODE" },
  publish: { type: "string", alias: "p", description: "Publish a container port on the host (repeatable; ranges work)", valueHint: "[HOSTIP:]HOSTPORT:PORT[/tcp|/udp]" },
  dns: { type: "string", description: "A DNS server for the container (repeatable)", valueHint: "IP" },
  "add-host": { type: "string", description: "Add NAME to /etc/hosts (repeatable); NAME:host-gateway reaches the host's loopback", valueHint: "NAME:IP" },
  init: { type: "boolean", description: "Run a built-in init as PID 1 that reaps zombies and forwards signals" },
  tty: { type: "boolean", alias: "t", description: "Allocate a pseudo-terminal" },
  interactive: { type: "boolean", alias: "i", description: "Keep stdin open" },
  "cap-add": { type: "string", description: "Add a capability (repeatable; ALL for all)", valueHint: "CAP" },
  "cap-drop": { type: "string", description: "Drop a capability (repeatable; ALL for all)", valueHint: "CAP" },
  name: { type: "string", description: "Name the container", valueHint: "NAME" },
  rm: { type: "boolean", description: "Remove the container when it exits" },
  ...limitArgs,
  detach: { type: "boolean", alias: "d", description: "Run in the background and print the container id" },
  "log-opt": { type: "string", description: "Log option for -d: max-size=SIZE (default 16m; then the log moves to log.1)", valueHint: "max-size=SIZE" },
  userns: { type: "string", description: "auto: subordinate id ranges when configured (default); single: map only your own id", valueHint: "auto|single" },
} as const;

const REPEATABLE = ["env", "env-file", "volume", "tmpfs", "cap-add", "cap-drop", "publish", "dns", "add-host"] as const;

/** --log-opt max-size=N[k|m|g] -> bytes. */
function logOpt(opt: string | undefined): number | undefined {
  if (opt === undefined) return undefined;
  const m = opt.match(/^max-size=(\d+)([kmg]?)b?$/i);
  if (!m || Number(m[1]) === 0) throw new BunkerError(`invalid --log-opt "${opt}": use max-size=SIZE, for example max-size=10m`);
  return Number(m[1]) * 1024 ** " kmg".indexOf((m[2] || " ").toLowerCase());
}

export default {
  def: { meta: { name: "run", description: "Run a command in a new container" }, args: runArgs },
  async run(rawArgs) {
    const { values: v, positionals } = parseCli(runArgs, rawArgs, { verb: "run", stopAtPositional: true, repeatable: REPEATABLE });
    const [target, ...command] = positionals;
    if (!target) throw new BunkerError("run needs a root filesystem, a bundle or an image: bunker run [OPTIONS] ROOTFS|BUNDLE|IMAGE [COMMAND [ARG...]]");
    const list = (k: (typeof REPEATABLE)[number]) => v[k] as string[];
    const str = (k: string) => v[k] as string | undefined;
    const flags: RunFlags = {
      env: list("env"),
      envFile: list("env-file"),
      entrypoint: str("entrypoint"),
      workdir: str("workdir"),
      user: str("user"),
      hostname: str("hostname"),
      volume: list("volume"),
      tmpfs: list("tmpfs"),
      readOnly: v["read-only"] as boolean,
      network: str("network"),
      publish: list("publish"),
      dns: list("dns"),
      addHost: list("add-host"),
      init: v.init as boolean,
      tty: v.tty as boolean,
      interactive: v.interactive as boolean,
      capAdd: list("cap-add"),
      capDrop: list("cap-drop"),
      name: str("name"),
      userns: str("userns"),
      rm: v.rm as boolean,
      detach: v.detach as boolean,
      logMaxSize: logOpt(str("log-opt")),
      limits: limitFlags(v),
    };
    const { run } = await import("../runtime/run.ts");
    const id = await run(target, command, flags);
    console.log(id); // only a detached run returns
  },
} satisfies Command<typeof runArgs>;

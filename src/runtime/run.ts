// `bunker run`: flags -> spec -> validated -> plan -> the C stage.
import { BunkerError } from "../errors.ts";
import { log, say } from "../log.ts";
import { chooseMaps } from "../linux/idmap.ts";
import { compile, CompileError } from "../linux/compile.ts";
import { execStage } from "../linux/stage.ts";
import * as sys from "../linux/sys.ts";
import { resolve } from "../paths.ts";
import { buildSpec, FlagError, type RunFlags } from "../spec/build.ts";
import type { Spec } from "../spec/types.ts";
import { validateSpec } from "../spec/validate.ts";
import { checkUserNamespaces, findHelper, hasNamespace, identity, subIds } from "./host.ts";
import { ContainerDir, type ContainerState, stateRoot, starttime } from "./state.ts";

function kind(path: string): "dir" | "file" | undefined {
  const st = sys.stat(path);
  return st === undefined ? undefined : st.kind === "dir" ? "dir" : "file";
}

/** ROOTFS or BUNDLE: a bundle is a directory holding config.json. */
export function loadTarget(target: string): { rootfs: string; bundle?: Spec; bundleDir?: string } {
  const dir = resolve(target);
  if (kind(dir) !== "dir") {
    throw new BunkerError(`${target}: no such directory: give a root filesystem directory or an OCI bundle`);
  }
  const configText = sys.tryRead(`${dir}/config.json`);
  if (configText === undefined) return { rootfs: dir };
  let bundle: Spec;
  try {
    bundle = JSON.parse(configText) as Spec;
  } catch (e) {
    throw new BunkerError(`${dir}/config.json is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof bundle !== "object" || bundle === null || typeof bundle.root?.path !== "string") {
    throw new BunkerError(`${dir}/config.json has no root.path: it is not an OCI runtime config`);
  }
  const rootfs = resolve(bundle.root.path, dir);
  if (kind(rootfs) !== "dir") throw new BunkerError(`the bundle's root ${rootfs} is not a directory`);
  return { rootfs, bundle, bundleDir: dir };
}

function hostsFile(hostname: string | undefined, name: string | undefined, network: boolean): string {
  if (!network) return sys.tryRead("/etc/hosts") ?? "127.0.0.1\tlocalhost\n";
  const names = [hostname, name].filter(Boolean).join(" ");
  return (
    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" + (names ? `127.0.1.1\t${names}\n` : "")
  );
}

/** The host's resolv.conf; in a network namespace of its own the host's
 * loopback resolvers are out of reach, so those lines are dropped. */
function resolvConf(ownNetwork: boolean): string {
  const text = sys.tryRead("/etc/resolv.conf") ?? "";
  if (!ownNetwork) return text;
  return text
    .split("\n")
    .filter((l) => !/^\s*nameserver\s+(127\.|::1)/.test(l))
    .join("\n");
}

export async function run(target: string, command: string[], flags: RunFlags): Promise<never> {
  if (flags.tty && flags.interactive && !sys.isatty(0)) {
    throw new BunkerError("the input device is not a TTY: drop -t, or run from a terminal");
  }
  const hint = checkUserNamespaces();
  const { rootfs, bundle, bundleDir } = loadTarget(target);
  const who = identity();
  const id = sys.randomHex(32);
  let helpers: { newuidmap?: string; newgidmap?: string } | undefined;
  const idHelpers = () => (helpers ??= { newuidmap: findHelper("newuidmap"), newgidmap: findHelper("newgidmap") });

  let built;
  try {
    built = buildSpec({
      flags,
      command,
      rootfs,
      bundle,
      id,
      maps: (mode) => chooseMaps(mode, who, subIds(who), idHelpers()),
      hostEnv: process.env,
      readFile: (f) => {
        try {
          return sys.readFile(f);
        } catch (e) {
          throw new FlagError(`cannot read env file ${f}: ${e instanceof sys.SysError ? e.reason : e}`);
        }
      },
    });
  } catch (e) {
    if (e instanceof FlagError) throw new BunkerError(e.message);
    throw e;
  }
  const { spec, opts } = built;
  // "cgroup where available": a kernel without cgroup namespaces runs without one
  if (!hasNamespace("cgroup")) spec.linux!.namespaces = spec.linux!.namespaces!.filter((n) => n.type !== "cgroup");
  const ownNetwork = spec.linux!.namespaces!.some((n) => n.type === "network");
  if (!ownNetwork && flags.hostname === undefined && !bundle) spec.hostname = sys.tryRead("/proc/sys/kernel/hostname")?.trim();

  const errs = validateSpec(spec);
  if (errs.length) {
    throw new BunkerError(errs[0]! + (errs.length > 1 ? ` (and ${errs.length - 1} more problems)` : ""));
  }
  if (built.notice) log().info(built.notice);
  const root = stateRoot();
  const state = new ContainerDir(root, id);
  try {
    if (opts.name) state.claimName(opts.name);
    const etcFiles = [
      { destination: "/etc/hosts", source: state.write("hosts", hostsFile(spec.hostname, opts.name, ownNetwork)) },
      { destination: "/etc/resolv.conf", source: state.write("resolv.conf", resolvConf(ownNetwork)) },
    ];
    if (spec.hostname) etcFiles.push({ destination: "/etc/hostname", source: state.write("hostname", `${spec.hostname}\n`) });
    const record: ContainerState = { id, name: opts.name, pid: process.pid, starttime: starttime(process.pid), rootfs, created: new Date().toISOString() };
    state.write("state.json", JSON.stringify(record));
    const plan = compile(spec, opts, {
      uid: who.uid,
      gid: who.gid,
      ...idHelpers(),
      bundleDir,
      etcFiles,
      cleanup: state.cleanupList(),
      hint,
      kind,
    });
    if (process.env.BUNKER_PLAN) say(plan.describe());
    return await execStage(plan, root);
  } catch (e) {
    state.remove();
    if (e instanceof CompileError) throw new BunkerError(e.message);
    throw e;
  }
}

// Resource limits through a delegated cgroup v2 subtree, as systemd's
// Delegate=yes hands one to a user. bunker writes only below the delegated
// cgroup it gets, never elsewhere. Where a systemd user manager runs, that
// is a transient scope of the container's own (bunker-ID-RANDOM.scope, asked
// for over D-Bus, as Podman does): SCOPE/supervisor holds the stage and
// SCOPE/container the container. Elsewhere it is the nearest cgroup above
// ours that is ours: bunker/ there (controllers enabled, no processes, so the
// no-internal-processes rule holds) and one leaf bunker/ID per container,
// removed with the container. On a v1 or hybrid host, or without
// delegation, containers run without a cgroup of their own, and asking for
// a limit fails with the reason.
import { BunkerError } from "../errors.ts";
import * as sys from "../linux/sys.ts";
import type { Spec } from "../spec/types.ts";
import { startScope, userManagerSocket } from "./systemd.ts";
import { log } from "../log.ts";

/** OCI linux.resources, the parts bunker maps onto cgroup v2. */
export interface Resources {
  memory?: { limit?: number; reservation?: number; swap?: number };
  cpu?: { shares?: number; quota?: number; period?: number; cpus?: string };
  pids?: { limit?: number };
  blockIO?: { weight?: number };
}

export interface LimitFlags {
  memory?: string;
  memorySwap?: string;
  memoryReservation?: string;
  cpus?: string;
  cpuShares?: string;
  cpusetCpus?: string;
  pidsLimit?: string;
  ioWeight?: string;
}

/** "512m", "1g", "1048576" -> bytes (Docker's units: b, k, m, g). */
export function parseBytes(s: string, flag: string): number {
  const m = s.trim().match(/^(\d+(?:\.\d+)?)\s*([bkmg]?)b?$/i);
  if (!m) throw new BunkerError(`invalid ${flag} "${s}": use a size like 512m or 1g`);
  return Math.floor(Number(m[1]) * 1024 ** "bkmg".indexOf((m[2] || "b").toLowerCase()));
}

function integer(s: string, flag: string, min: number, max: number): number {
  if (!/^-?\d+$/.test(s) || Number(s) < min || Number(s) > max) throw new BunkerError(`invalid ${flag} "${s}": give a whole number from ${min} to ${max}`);
  return Number(s);
}

/** Docker's flags as OCI resources; undefined when none is given. */
export function resourcesFromFlags(f: LimitFlags): Resources | undefined {
  const r: Resources = {};
  if (f.memory !== undefined || f.memorySwap !== undefined || f.memoryReservation !== undefined) {
    r.memory = {};
    if (f.memory !== undefined) r.memory.limit = parseBytes(f.memory, "--memory");
    if (f.memoryReservation !== undefined) r.memory.reservation = parseBytes(f.memoryReservation, "--memory-reservation");
    if (f.memorySwap !== undefined) {
      if (r.memory.limit === undefined) throw new BunkerError("--memory-swap needs --memory, as in Docker");
      r.memory.swap = f.memorySwap === "-1" ? -1 : parseBytes(f.memorySwap, "--memory-swap");
      if (r.memory.swap !== -1 && r.memory.swap < r.memory.limit) throw new BunkerError("--memory-swap is memory plus swap: it cannot be less than --memory");
    }
  }
  if (f.cpus !== undefined || f.cpuShares !== undefined || f.cpusetCpus !== undefined) {
    r.cpu = {};
    if (f.cpus !== undefined) {
      const n = Number(f.cpus);
      if (!/^\d+(\.\d+)?$/.test(f.cpus) || n <= 0) throw new BunkerError(`invalid --cpus "${f.cpus}": give a number of CPUs like 0.5 or 2`);
      r.cpu.period = 100_000;
      r.cpu.quota = Math.round(n * 100_000);
    }
    if (f.cpuShares !== undefined) r.cpu.shares = integer(f.cpuShares, "--cpu-shares", 2, 262144);
    if (f.cpusetCpus !== undefined) {
      if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(f.cpusetCpus)) throw new BunkerError(`invalid --cpuset-cpus "${f.cpusetCpus}": use a list like 0-1,3`);
      r.cpu.cpus = f.cpusetCpus;
    }
  }
  if (f.pidsLimit !== undefined) r.pids = { limit: integer(f.pidsLimit, "--pids-limit", -1, 4194304) };
  if (f.ioWeight !== undefined) r.blockIO = { weight: integer(f.ioWeight, "--io-weight", 10, 1000) };
  return Object.keys(r).length ? r : undefined;
}

/** The cgroup v2 files and what to write to them, and the controllers they need. */
export function cgroupFiles(r: Resources): { files: [string, string][]; controllers: string[] } {
  const files: [string, string][] = [];
  const controllers = new Set<string>();
  const add = (controller: string, file: string, value: string) => (controllers.add(controller), files.push([file, value]));
  const m = r.memory;
  if (m?.limit !== undefined) add("memory", "memory.max", m.limit > 0 ? String(m.limit) : "max");
  if (m?.reservation !== undefined) add("memory", "memory.low", String(m.reservation));
  if (m?.swap !== undefined && m.limit !== undefined) add("memory", "memory.swap.max", m.swap === -1 ? "max" : String(Math.max(0, m.swap - m.limit)));
  const c = r.cpu;
  if (c?.quota !== undefined) add("cpu", "cpu.max", `${c.quota > 0 ? c.quota : "max"} ${c.period ?? 100_000}`);
  // crun's mapping of shares (2..262144) onto weight (1..10000)
  if (c?.shares !== undefined) add("cpu", "cpu.weight", String(1 + Math.floor(((c.shares - 2) * 9999) / 262142)));
  if (c?.cpus !== undefined) add("cpuset", "cpuset.cpus", c.cpus);
  if (r.pids?.limit !== undefined) add("pids", "pids.max", r.pids.limit > 0 ? String(r.pids.limit) : "max");
  if (r.blockIO?.weight !== undefined) add("io", "io.weight", `default ${r.blockIO.weight}`);
  return { files, controllers: [...controllers] };
}

const CGROUP2_ROOT = "/sys/fs/cgroup";

/** What /sys/fs/cgroup is on this host, from our mountinfo: the reason when it is not a pure cgroup v2. */
function notPureV2(mountinfo: string): string | undefined {
  const fstype = mountinfo
    .split("\n")
    .map((l) => l.split(" - "))
    .find(([a]) => a?.split(" ")[4] === CGROUP2_ROOT)?.[1]
    ?.split(" ")[0];
  if (fstype !== "cgroup2") return `this host has no pure cgroup v2 hierarchy at ${CGROUP2_ROOT} (it mounts ${fstype ?? "nothing"} there: cgroup v1, or a hybrid layout)`;
}

/** Our own cgroup v2 path (from /proc/self/cgroup), e.g. /user.slice/.../cmd.scope. */
function ownCgroup(self = sys.tryRead("/proc/self/cgroup") ?? ""): string | undefined {
  return self.split("\n").find((l) => l.startsWith("0::"))?.slice(3);
}

/**
 * The delegated cgroup bunker may use: the nearest ancestor of our own
 * cgroup that belongs to us (our own is a leaf that holds processes), or the
 * reason there is none.
 */
export function findDelegated(uid = process.getuid!(), mountinfo = sys.tryRead("/proc/self/mountinfo") ?? "", self = sys.tryRead("/proc/self/cgroup") ?? ""):
  | { dir: string }
  | { why: string } {
  const why = notPureV2(mountinfo);
  if (why) return { why };
  const path = ownCgroup(self);
  if (!path) return { why: "this process is in no cgroup v2 group" };
  const parts = path.split("/").filter(Boolean);
  for (let n = parts.length - 1; n >= 1; n--) {
    const dir = `${CGROUP2_ROOT}/${parts.slice(0, n).join("/")}`;
    if (owned(dir, uid)) return { dir };
  }
  return { why: `no cgroup above ${path} is delegated to uid ${uid}` };
}

/** We may create groups in dir and move processes into its subtree. */
function owned(dir: string, uid: number): boolean {
  return sys.stat(`${dir}/cgroup.subtree_control`)?.uid === uid && sys.stat(`${dir}/cgroup.procs`)?.uid === uid;
}

/**
 * Who may hand out cgroups here: a systemd user manager, when its private
 * socket is there, or only bunker itself. BUNKER_CGROUP_MANAGER=cgroupfs|systemd
 * chooses (`forced`).
 */
export function cgroupManager(env = process.env): { kind: "systemd"; socket: string; forced: boolean } | { kind: "cgroupfs" } | { kind: "systemd"; why: string } {
  const asked = env.BUNKER_CGROUP_MANAGER;
  if (asked !== undefined && asked !== "systemd" && asked !== "cgroupfs") throw new BunkerError(`BUNKER_CGROUP_MANAGER=${asked}: use systemd or cgroupfs`);
  if (asked === "cgroupfs") return { kind: "cgroupfs" };
  const socket = userManagerSocket(env);
  if (socket) return { kind: "systemd", socket, forced: asked === "systemd" };
  return asked === "systemd" ? { kind: "systemd", why: `no systemd user manager socket is at $XDG_RUNTIME_DIR/systemd/private` } : { kind: "cgroupfs" };
}

const HOW = "run bunker in a systemd user session on a cgroup v2 host (systemd.unified_cgroup_hierarchy=1; user@.service has Delegate=yes), or drop the limit";
const HOW_SYSTEMD = "systemd delegates only cpu, memory and pids to users by default; a drop-in for user@.service with Delegate=cpu cpuset io memory pids adds the others, or drop the limit";

/**
 * The container's own cgroup, made and set up, with the spec's limits
 * written. Where the user manager owns the subtree we are in (we are below
 * user@UID.service), or we own none (a login session's scope): SCOPE/container
 * in a transient scope that this process moves into (and out of its top, to
 * SCOPE/supervisor, so the top may enable controllers; the stage inherits
 * that), as Podman does, instead of making groups among the manager's
 * slices. Else, or if the manager fails us: bunker/ID below the delegated
 * cgroup. Undefined when there is no delegation and the spec has no
 * limit; an error naming the reason when the command line asked for one
 * (`asked`: the controllers its limits need). Limits the spec carries from
 * elsewhere (an image or bundle made on another host, a config.json) that the
 * host cannot apply are left out with a notice instead, and the container
 * runs with the others, as Podman does on such hosts. The spec keeps them
 * all: it is what the container's export carries to the next host.
 */
export async function createCgroup(id: string, spec: Spec, asked: string[]): Promise<string | undefined> {
  const r = spec.linux?.resources as Resources | undefined;
  const { files: all, controllers } = cgroupFiles(r ?? {});
  let files = all;
  const shown = (fs: [string, string][]) => fs.map(([f, v]) => `${f} ${v}`).join(", ");
  const refuse = (why: string) => {
    if (files.length === 0) return undefined; // no limit: run without a cgroup of its own
    if (asked.length) throw new BunkerError(`resource limits need a delegated cgroup v2 subtree, and ${why}: ${HOW}`);
    log().warn(`the container's resource limits (${shown(files)}) are not applied: ${why}`);
    return undefined;
  };
  const mountinfo = sys.tryRead("/proc/self/mountinfo") ?? "";
  const v1 = notPureV2(mountinfo);
  if (v1) return refuse(v1);
  const manager = cgroupManager();
  if ("why" in manager) return refuse(manager.why);
  const found = findDelegated(process.getuid!(), mountinfo);
  let scope: string | undefined;
  if (manager.kind === "systemd" && (manager.forced || "why" in found || found.dir.includes(`/user@${process.getuid!()}.service`))) {
    try {
      // a random suffix: a restarted container's old scope may not be collected yet
      const unit = `bunker-${id.slice(0, 12)}-${sys.randomHex(4)}.scope`;
      await startScope(unit, process.pid, { delegate: true, description: `bunker container ${id.slice(0, 12)}`, socket: manager.socket });
      scope = `${CGROUP2_ROOT}${ownCgroup()}`;
    } catch (e) {
      if (manager.forced || "why" in found) {
        if (asked.length) throw e;
        return refuse((e as Error).message);
      }
      if (files.length) log().info(`${(e as Error).message}; the container's cgroup is made in ${found.dir} instead`);
    }
  }
  let delegated: string, parent: string, leaf: string, have: string[];
  if (scope) {
    delegated = parent = scope;
    leaf = `${scope}/container`;
    have = controllersOf(`${scope}/cgroup.controllers`);
  } else {
    if ("why" in found) return refuse(found.why);
    delegated = found.dir;
    parent = `${found.dir}/bunker`;
    leaf = `${parent}/${id}`;
    // what the delegated cgroup enables for its children is what bunker/ may use
    have = controllersOf(`${found.dir}/cgroup.subtree_control`);
  }
  const missing = controllers.filter((c) => !have.includes(c));
  if (missing.length) {
    const lacks = (cs: string[]) => `the delegated cgroup ${delegated} lacks the ${cs.join(", ")} controller${cs.length > 1 ? "s" : ""}`;
    const needed = missing.filter((c) => asked.includes(c));
    if (needed.length) throw new BunkerError(`${lacks(needed)}: ${scope ? HOW_SYSTEMD : HOW}`);
    // only the carried limits of the controllers it lacks are left out ("memory.max": memory's)
    const out = files.filter(([f]) => missing.includes(f.slice(0, f.indexOf("."))));
    log().warn(`the container's resource limits (${shown(out)}) are not applied: ${lacks(missing)}`);
    files = files.filter((f) => !out.includes(f));
  }
  try {
    if (scope) {
      sys.mkdir(`${scope}/supervisor`, 0o755);
      sys.writeExisting(`${scope}/supervisor/cgroup.procs`, String(process.pid));
    } else {
      sys.mkdir(parent, 0o755);
      removeCgroup(leaf); // a restarted container's: its counters (oom_kill, say) start afresh
    }
    // the parent holds no process, so its children may use every controller it has
    const enabled = controllersOf(`${parent}/cgroup.subtree_control`);
    const want = have.filter((c) => !enabled.includes(c));
    if (want.length) sys.writeExisting(`${parent}/cgroup.subtree_control`, want.map((c) => `+${c}`).join(" "));
    sys.mkdir(leaf, 0o755);
    for (const [file, value] of files) sys.writeExisting(`${leaf}/${file}`, value);
  } catch (e) {
    removeCgroup(leaf);
    if (files.length === 0) return undefined;
    const why = e instanceof sys.SysError ? e.reason : String(e);
    throw new BunkerError(`cannot set up the container's cgroup ${leaf}: ${why}`);
  }
  return leaf;
}

const controllersOf = (file: string) => (sys.tryRead(file) ?? "").trim().split(/\s+/).filter(Boolean);

/**
 * Before this process moves into a container's cgroup (`bunker exec`): the
 * kernel lets it only when the nearest group above both is ours. From a
 * login session's scope (root's) that is not so; a scope of our own from the
 * systemd user manager puts this process in the user's subtree first.
 */
export async function reachCgroup(target: string, uid = process.getuid!()): Promise<void> {
  const self = ownCgroup()?.split("/").filter(Boolean) ?? [];
  const there = target.slice(CGROUP2_ROOT.length).split("/").filter(Boolean);
  let n = 0;
  while (n < self.length && n < there.length && self[n] === there[n]) n++;
  if (owned(`${CGROUP2_ROOT}/${there.slice(0, n).join("/")}`.replace(/\/$/, ""), uid)) return;
  const manager = cgroupManager();
  if (manager.kind !== "systemd" || "why" in manager) return; // the join will fail and say so
  await startScope(`bunker-exec-${process.pid}.scope`, process.pid, { delegate: false, description: "bunker exec", socket: manager.socket });
}

export function removeCgroup(dir: string | undefined): void {
  if (!dir) return;
  try {
    sys.rmdir(dir);
  } catch {}
}

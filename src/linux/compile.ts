// A validated runtime spec -> the plan the C stage runs. Every decision about
// order, flags and paths is made here, so that it can be read and tested.
import { BunkerError } from "../errors.ts";
import { join } from "../paths.ts";
import { DEFAULT_PATH } from "../spec/defaults.ts";
import type { IdMapping, Mount, Process, RunOptions, Spec } from "../spec/types.ts";
import { capMask } from "./caps.ts";
import { formatMap, isSelfMap, mapsContain, newidmapArgs } from "./idmap.ts";
import { MS, type ParsedMountOptions, parseMountOptions } from "./mountopts.ts";
import { Create, Op, type OpCode, OpFlag, Plan, Supervise } from "./plan.ts";

const SIGKILL = 9;

export const CLONE = {
  NEWNS: 0x20000,
  NEWCGROUP: 0x02000000,
  NEWUTS: 0x04000000,
  NEWIPC: 0x08000000,
  NEWUSER: 0x10000000,
  NEWPID: 0x20000000,
  NEWNET: 0x40000000,
} as const;

const NS_FLAGS: Record<string, number> = {
  user: CLONE.NEWUSER,
  mount: CLONE.NEWNS,
  pid: CLONE.NEWPID,
  ipc: CLONE.NEWIPC,
  uts: CLONE.NEWUTS,
  network: CLONE.NEWNET,
  cgroup: CLONE.NEWCGROUP,
};

export const RLIMITS: Record<string, number> = {
  RLIMIT_CPU: 0, RLIMIT_FSIZE: 1, RLIMIT_DATA: 2, RLIMIT_STACK: 3, RLIMIT_CORE: 4, RLIMIT_RSS: 5,
  RLIMIT_NPROC: 6, RLIMIT_NOFILE: 7, RLIMIT_MEMLOCK: 8, RLIMIT_AS: 9, RLIMIT_LOCKS: 10,
  RLIMIT_SIGPENDING: 11, RLIMIT_MSGQUEUE: 12, RLIMIT_NICE: 13, RLIMIT_RTPRIO: 14, RLIMIT_RTTIME: 15,
};

/** Docker's exit codes for a command that is not found, or cannot be run. */
export const EXIT_NOT_FOUND = 127;
export const EXIT_CANNOT_INVOKE = 126;

/** What the stage passes on to the container: SIGINT, SIGTERM, SIGHUP, SIGQUIT,
 * SIGUSR1, SIGUSR2, SIGWINCH (as a mask of bit N-1 for signal N). */
export const FORWARDED_SIGNALS = [2, 15, 1, 3, 10, 12, 28].reduce((m, s) => m | (1n << BigInt(s - 1)), 0n);

/** The devices every container gets, bound from the host after checking
 * that each is the real character device (major, minor). */
export const DEVICES: [string, number, number][] = [
  ["null", 1, 3],
  ["zero", 1, 5],
  ["full", 1, 7],
  ["random", 1, 8],
  ["urandom", 1, 9],
  ["tty", 5, 0],
];

const DEV_LINKS: [string, string][] = [
  ["/proc/self/fd", "/dev/fd"],
  ["/proc/self/fd/0", "/dev/stdin"],
  ["/proc/self/fd/1", "/dev/stdout"],
  ["/proc/self/fd/2", "/dev/stderr"],
  ["pts/ptmx", "/dev/ptmx"],
];

/** glibc's makedev() for the dev_t the kernel reports in st_rdev. */
export function makedev(major: number, minor: number): bigint {
  const M = BigInt(major);
  const m = BigInt(minor);
  return ((M & 0xfffff000n) << 32n) | ((M & 0xfffn) << 8n) | ((m & 0xffffff00n) << 12n) | (m & 0xffn);
}

export interface CompileContext {
  /** The caller on the host. */
  uid: number;
  gid: number;
  /** The path of newuidmap or newgidmap, or undefined; asked only for range maps. */
  helper: (name: "newuidmap" | "newgidmap") => string | undefined;
  /** Where relative bind sources of a bundle resolve. */
  bundleDir?: string;
  /** Generated files bound into /etc unless a mount already covers them. */
  etcFiles: { destination: string; source: string }[];
  /** Paths the stage removes when the container is gone ("dir/" for a directory). */
  cleanup: string[];
  /** Added to the messages of the steps a user-namespace restriction breaks. */
  hint?: string;
  /** Kind of a host path, for bind targets: a directory, a file, or missing. */
  kind: (hostPath: string) => "dir" | "file" | undefined;
  /** The root is an overlay of image layers (top first) mounted on spec.root.path;
   * through fuse-overlayfs (this path to it) where the kernel's cannot be had. */
  overlay?: { lower: string[]; upper: string; work: string; fuse?: string };
  /** After the container: files to write its exit status to, and trees to remove (--rm). */
  after?: { status?: string[]; remove?: string[] };
  /** Where the stage records its pid and the container's, and the state lock it holds meanwhile (see OP_RECORD). */
  record?: { path: string; lock: string };
  /** Detached (-d): the stage leaves the caller's session and logs the output. */
  detach?: { log: string; logCap: number };
  /** Helpers that live as long as the container (pasta), started once the ids are mapped. */
  helpers?: Helper[];
  /** The container's own cgroup (v2), which its first process joins before it runs. */
  cgroup?: string;
}

export interface Helper {
  desc: string;
  /** argv; "{pid}" is the container's pid. */
  argv: string[];
  /** A file the helper writes once it is ready (""), or the fd it is handed to write a byte to. */
  ready: string;
  readyFd?: number;
  timeoutMs: number;
  /** Its stderr goes to /dev/null (slirp4netns talks there even when all is well). */
  quiet?: boolean;
  /** Requests to its API socket once it is ready (slirp4netns's add_hostfwd). */
  api?: { socket: string; requests: { desc: string; json: string }[] };
  /** It mounts: it runs in the container's user and mount namespaces (not its
   * pid namespace: the container cannot see it), ready once `ready` is a mount point there. */
  mounts?: boolean;
}

const withHint = (desc: string, hint?: string) => (hint ? `${desc}\t${hint}` : desc);

function makePrivate(plan: Plan, hint?: string): void {
  plan.add(Op.MOUNT, withHint("make the mount namespace private", hint), {
    flags: OpFlag.HOST_TARGET,
    strs: ["", "/", "", ""],
    ints: [MS.REC | MS.PRIVATE, Create.NONE, -1],
  });
}

/** overlayfs's options for `lower` (top first), with an upper and work directory when writable. */
function overlayOptions(lower: string[], rw?: { upper: string; work: string }): string {
  const paths = rw ? [...lower, rw.upper, rw.work] : lower;
  if (paths.some((p) => /[:,\\]/.test(p))) throw new BunkerError(`the store's path holds ':' or ',', which overlayfs cannot take: set XDG_DATA_HOME elsewhere`);
  const data = `lowerdir=${lower.join(":")}${rw ? `,upperdir=${rw.upper},workdir=${rw.work}` : ""}`;
  if (data.length > 4000) throw new BunkerError(`the image has too many layers (${lower.length}) for one overlay mount`);
  return data;
}

/**
 * fuse-overlayfs, where the kernel's overlayfs is not to be had in a user
 * namespace (Linux < 5.11): started by the stage in the container's user and
 * mount namespaces before the container runs, so the mount is there for it,
 * but outside its pid namespace, so nothing in the container can see, signal
 * or trace it (and through it reach the host's paths). It lives as long as
 * the container; the stage stops it after.
 */
export function fuseOverlayHelper(tool: string, at: string, lower: string[], rw?: { upper: string; work: string }): Helper {
  return {
    desc: `mount the image's layers (fuse-overlayfs) on ${at}`,
    argv: [tool, "-f", "-o", overlayOptions(lower, rw), at],
    ready: at,
    timeoutMs: 10_000,
    quiet: true, // the stage keeps its stderr, and says its last line if it fails
    mounts: true,
  };
}

/** An overlay of `lower` (top first) on `at`: writable with an upper and work directory, else read-only. */
function addOverlay(plan: Plan, at: string, what: string, lower: string[], rw?: { upper: string; work: string }): void {
  const data = `${overlayOptions(lower, rw)},userxattr`;
  plan.add(Op.MOUNT, withHint(`mount ${what} (overlayfs) on ${at}`, "overlayfs in a user namespace needs Linux 5.11"), {
    flags: OpFlag.HOST_TARGET,
    strs: ["overlay", at, "overlay", data],
    ints: [rw ? 0 : MS.RDONLY, Create.NONE, -1],
  });
}

/**
 * The order, and why:
 * - stage: clone; write the id maps (or run newuidmap/newgidmap); release.
 * - child, on the host's /proc: every mount, /dev, the generated /etc files,
 *   masks, read-only paths, the working directory and the read-only root are
 *   done before pivot_root, through /proc/self/fd of files resolved inside
 *   the root, so nothing depends on the container having a /proc of its own.
 * - child, after pivot_root: the process: session, limits, capabilities,
 *   groups and user, working directory, no_new_privs, fds, exec.
 */
export function compile(spec: Spec, opts: RunOptions, ctx: CompileContext): Plan {
  const plan = new Plan();
  const proc = spec.process!;
  const linux = spec.linux ?? {};
  const ns = new Set((linux.namespaces ?? []).map((n) => n.type));
  const uidMaps = linux.uidMappings!;
  const gidMaps = linux.gidMappings!;
  const rootfs = spec.root!.path;

  // --- the stage: clone, id maps, release --------------------------------
  if (ctx.detach) {
    plan.add(Op.DETACH, "detach: a session of its own, the output to the log", {
      strs: [ctx.detach.log],
      ints: [ctx.detach.logCap, opts.interactive ? 1 : 0],
    });
  }
  // in a cgroup of its own, the child makes its cgroup namespace once it is in it, so that it is its root
  const lateCgroupNs = ctx.cgroup !== undefined && ns.has("cgroup");
  const cloned = [...ns].filter((t) => !(lateCgroupNs && t === "cgroup"));
  const fuse = ctx.overlay?.fuse ? [fuseOverlayHelper(ctx.overlay.fuse, rootfs, ctx.overlay.lower, ctx.overlay)] : [];
  const direct = addNamespaces(plan, cloned, uidMaps, gidMaps, ctx, [...fuse, ...(ctx.helpers ?? [])], ctx.cgroup);
  if (ctx.record) plan.add(Op.RECORD, "record the pids", { strs: [ctx.record.path, ctx.record.lock] });

  // --- the child: the file system, on the host's /proc ---------------------
  plan.add(Op.PDEATHSIG, "die with the stage", { ints: [SIGKILL] });
  if (lateCgroupNs) plan.add(Op.UNSHARE, "create the cgroup namespace", { ints: [CLONE.NEWCGROUP] });
  // pivot_root moves every process rooted where the container was to its new root: fuse-overlayfs too,
  // unless the container leaves the mount namespace it shares with it for a copy of its own
  if (fuse.length) plan.add(Op.UNSHARE, "a mount namespace of its own, apart from fuse-overlayfs", { ints: [CLONE.NEWNS] });
  makePrivate(plan, ctx.hint);
  if (ns.has("uts") && spec.hostname) plan.add(Op.SETHOSTNAME, `set hostname ${spec.hostname}`, { strs: [spec.hostname] });
  if (ns.has("network")) plan.add(Op.LOOPBACK, "bring up the loopback interface");
  if (ctx.overlay && !ctx.overlay.fuse) addOverlay(plan, rootfs, "the image's layers", ctx.overlay.lower, ctx.overlay);
  plan.add(Op.ROOT, `bind the root filesystem ${rootfs}`, { strs: [rootfs] });

  const mounts = spec.mounts ?? [];
  const mounted = new Set(mounts.map((m) => join(m.destination)));
  for (const m of mounts) {
    compileMount(plan, m, { ns, gidMaps, uidMaps, ctx });
    if (join(m.destination) === "/dev") addDevices(plan);
  }
  if (!mounted.has("/dev")) addDevices(plan);
  for (const f of ctx.etcFiles) {
    if (mounted.has(f.destination)) continue;
    // optional: a root filesystem the user cannot write may lack the file
    plan.add(Op.MOUNT, `bind ${f.destination}`, {
      flags: OpFlag.OPTIONAL,
      strs: [f.source, f.destination, "", ""],
      ints: [MS.BIND, Create.FILE, -1],
    });
  }
  for (const p of linux.maskedPaths ?? []) plan.add(Op.MASK, `mask ${p}`, { flags: OpFlag.IGNORE_ENOENT, strs: [p] });
  for (const p of linux.readonlyPaths ?? []) {
    plan.add(Op.MOUNT, `make ${p} read-only`, {
      flags: OpFlag.IGNORE_ENOENT | OpFlag.SRC_IN_ROOT,
      strs: [p, p, "", ""],
      ints: [MS.BIND | MS.REC | MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC, Create.NONE, -1],
    });
  }
  // Docker creates a missing working directory, and the image's volumes; they must exist before the root turns read-only
  for (const v of opts.volumes ?? []) {
    plan.add(Op.MKDIR, `create the image's volume ${v}`, { flags: OpFlag.OPTIONAL, strs: [v] });
    // Docker's volumes stay writable under --read-only: each a mount of its own, which the root's
    // remount (not recursive) leaves alone; only a directory of the root's own file system, so that
    // an image's symlink cannot have /proc bound over its masks
    if (spec.root!.readonly) {
      plan.add(Op.MOUNT, `keep the image's volume ${v} writable`, {
        flags: OpFlag.OPTIONAL | OpFlag.SRC_IN_ROOT | OpFlag.ROOT_FS,
        strs: [v, v, "", ""],
        ints: [MS.BIND, Create.NONE, -1],
      });
    }
  }
  plan.add(Op.MKDIR, `create the working directory ${proc.cwd}`, { flags: OpFlag.OPTIONAL, strs: [proc.cwd] });
  if (spec.root!.readonly) plan.add(Op.REMOUNT, "make the root filesystem read-only", { strs: ["/"], ints: [MS.RDONLY] });
  if (proc.terminal) plan.add(Op.CONSOLE, "set up the terminal", { strs: ["/dev/console"] });
  plan.add(Op.PIVOT, `pivot_root into ${rootfs}`);
  if (ctx.helpers?.some((h) => !h.mounts)) plan.add(Op.AWAIT, "wait for the network");
  // only now: a network helper opens the child's namespaces through /proc, which a non-dumpable child refuses
  plan.add(Op.DUMPABLE, "make the setup process non-dumpable", { ints: [0] });
  addProcess(plan, proc, opts, direct, gidMaps);

  // --- the stage again: run it, then tidy up ----------------------------------
  addSupervise(plan, proc, opts);
  // with the OOM killer's verdict, read while the cgroup is there (a systemd scope goes with the stage)
  const events = ctx.cgroup ? `${ctx.cgroup}/memory.events` : "";
  for (const f of ctx.after?.status ?? []) plan.add(Op.STATUS, "record the exit status", { strs: [f, events] });
  if (ctx.after?.remove?.length) {
    // --rm: the container's files belong to its ids; remove them as root of its user namespace,
    // kept open since the clone (no second newuidmap and newgidmap), or of a new one with its maps
    if (ns.has("user")) {
      plan.add(Op.REJOIN, "rejoin the container's user namespace");
      plan.add(Op.CLONE, "start the removal", { ints: [0] });
      plan.add(Op.RELEASE, "let it run");
    } else addNamespaces(plan, ["user"], uidMaps, gidMaps, ctx);
    plan.add(Op.RMTREE, `remove the container's files`, { strs: ctx.after.remove });
    plan.add(Op.SUPERVISE, "wait for the removal", { ints: [Supervise.AFTER, FORWARDED_SIGNALS] });
  }
  if (ctx.cleanup.length) plan.add(Op.CLEANUP, "remove the container's runtime files", { strs: ctx.cleanup });
  return plan;
}

function addSupervise(plan: Plan, proc: Process, opts: Pick<RunOptions, "interactive">): void {
  plan.add(Op.SUPERVISE, "supervise the container", {
    ints: [(proc.terminal ? Supervise.TTY : 0) | (proc.terminal && opts.interactive ? Supervise.STDIN : 0), FORWARDED_SIGNALS],
  });
}

/** The child, in its root: session, limits, capabilities, groups and user,
 * working directory, no_new_privs, fds, exec. */
function addProcess(plan: Plan, proc: Process, opts: Pick<RunOptions, "interactive" | "init">, direct: boolean, gidMaps: IdMapping[]): void {
  if (!proc.terminal) plan.add(Op.SETSID, "start a new session");
  if (!proc.terminal && !opts.interactive) plan.add(Op.STDIN_NULL, "connect stdin to /dev/null");
  plan.add(Op.UMASK, "set the umask", { ints: [proc.user.umask ?? 0o022] });
  for (const r of proc.rlimits ?? []) {
    plan.add(Op.RLIMIT, `set ${r.type} to ${r.soft}:${r.hard}`, { ints: [RLIMITS[r.type]!, BigInt(r.soft), BigInt(r.hard)] });
  }
  const caps = proc.capabilities ?? {};
  plan.add(Op.CAPBSET, "drop capabilities from the bounding set", { ints: [capMask(caps.bounding)] });
  if (!direct) {
    const groups = (proc.user.additionalGids ?? []).filter((g) => mapsContain(gidMaps, g));
    plan.add(Op.SETGROUPS, `set supplementary groups ${groups.join(",") || "(none)"}`, { ints: groups });
  }
  plan.add(Op.SETGID, `set gid ${proc.user.gid}`, { ints: [proc.user.gid] });
  // a user other than root keeps its permitted set through setuid; CAPSET then sets it exactly
  if (proc.user.uid !== 0) plan.add(Op.KEEPCAPS, "keep capabilities across setuid");
  plan.add(Op.SETUID, `set uid ${proc.user.uid}`, { ints: [proc.user.uid] });
  // changing the uid or gid clears the parent-death signal: set it again
  plan.add(Op.PDEATHSIG, "die with the stage", { ints: [SIGKILL] });
  // the kernel raises an ambient capability only if it is permitted and
  // inheritable; runc and crun skip the others, and so do we (their own
  // `spec --rootless` lists ambient capabilities with no inheritable ones)
  const permitted = capMask(caps.permitted);
  const inheritable = capMask(caps.inheritable);
  plan.add(Op.CAPSET, "set capabilities", {
    ints: [capMask(caps.effective), permitted, inheritable, capMask(caps.ambient) & permitted & inheritable],
  });
  plan.add(Op.CHDIR, `change to the working directory ${proc.cwd}`, { strs: [proc.cwd] });
  if (proc.noNewPrivileges) plan.add(Op.NO_NEW_PRIVS, "set no_new_privs");
  plan.add(Op.CLOSE_FDS, "close inherited file descriptors");
  const env = proc.env ?? [];
  // Docker looks the command up with its default PATH when the env has none
  const path = env.find((e) => e.startsWith("PATH="))?.slice(5) ?? DEFAULT_PATH;
  const args = proc.args!;
  plan.add(Op.EXEC, `exec "${args[0]}"`, {
    flags: opts.init ? OpFlag.INIT : 0,
    ints: [args.length, env.length, EXIT_NOT_FOUND, EXIT_CANNOT_INVOKE],
    strs: [path, ...args, ...env],
  });
}

/** A process in a running container (`bunker exec`): join its namespaces,
 * then the same process steps as `run`. */
export function compileExec(
  spec: Spec,
  proc: Process,
  target: { pid: number; starttime: string },
  opts: { interactive: boolean; detach: boolean },
  ctx: Pick<CompileContext, "uid" | "gid">,
  cgroup?: string,
): Plan {
  const plan = new Plan();
  const linux = spec.linux!;
  const ns = (linux.namespaces ?? []).map((n) => n.type);
  let flags = 0;
  for (const t of ns) flags |= NS_FLAGS[t] ?? 0;
  if (opts.detach) plan.add(Op.DETACH, "detach from the terminal", { strs: [""], ints: [0, 0] });
  // into the container's cgroup while its path is still the host's (the join changes the view); the process inherits it
  if (cgroup) plan.add(Op.WRITE, `join the container's cgroup ${cgroup}`, { strs: [`${cgroup}/cgroup.procs`, "0"] });
  plan.add(Op.JOIN, `join the container's namespaces (${ns.join(", ")})`, { ints: [target.pid, flags], strs: [target.starttime] });
  plan.add(Op.CLONE, "start the process", { ints: [0] });
  plan.add(Op.RELEASE, "let it run");
  plan.add(Op.PDEATHSIG, "die with the stage", { ints: [SIGKILL] });
  plan.add(Op.DUMPABLE, "make the setup process non-dumpable", { ints: [0] });
  if (proc.terminal) plan.add(Op.CONSOLE, "set up the terminal", { strs: [""] });
  const direct = isSelfMap(linux.uidMappings!, ctx.uid) && isSelfMap(linux.gidMappings!, ctx.gid);
  addProcess(plan, proc, { interactive: opts.interactive, init: false }, direct, linux.gidMappings!);
  addSupervise(plan, proc, opts);
  return plan;
}

/** Clone into the namespaces, map the ids, release the child. Returns
 * whether the maps were written directly (one id: setgroups is denied). */
function addNamespaces(
  plan: Plan,
  ns: string[],
  uidMaps: IdMapping[],
  gidMaps: IdMapping[],
  ctx: Pick<CompileContext, "uid" | "gid" | "helper" | "hint">,
  helpers: Helper[] = [],
  cgroup?: string,
): boolean {
  let flags = 0;
  for (const t of ns) flags |= NS_FLAGS[t] ?? 0;
  plan.add(Op.CLONE, withHint(`create namespaces (${ns.join(", ")})`, ctx.hint), { ints: [flags] });
  if (cgroup) addJoinCgroup(plan, cgroup);
  const direct = isSelfMap(uidMaps, ctx.uid) && isSelfMap(gidMaps, ctx.gid);
  if (direct) {
    plan.add(Op.WRITE, "deny setgroups in the user namespace", { strs: ["/proc/{pid}/setgroups", "deny"] });
    plan.add(Op.WRITE, withHint("write the uid map", ctx.hint), { strs: ["/proc/{pid}/uid_map", formatMap(uidMaps)] });
    plan.add(Op.WRITE, withHint("write the gid map", ctx.hint), { strs: ["/proc/{pid}/gid_map", formatMap(gidMaps)] });
  } else {
    for (const [name, maps, file] of [
      ["newuidmap", uidMaps, "/etc/subuid"],
      ["newgidmap", gidMaps, "/etc/subgid"],
    ] as const) {
      const tool = ctx.helper(name);
      if (!tool) throw new BunkerError(`${name} is needed for this id map but was not found: install the uidmap package`);
      plan.add(Op.SPAWN, `map ids with ${name}\tcheck your ranges in ${file}`, { strs: [tool, "{pid}", ...newidmapArgs(maps)] });
    }
  }
  // a mounting helper (fuse-overlayfs) is ready before the child mounts its root; a network helper
  // starts while the child sets up, which waits for it (Op.AWAIT) before it runs the command
  const mounting = helpers.filter((h) => h.mounts);
  const network = helpers.filter((h) => !h.mounts);
  addHelpers(plan, mounting);
  plan.add(Op.RELEASE, "start the container process");
  if (network.length) {
    addHelpers(plan, network);
    plan.add(Op.RELEASE, "let the container's command start");
  }
  return direct;
}

function addHelpers(plan: Plan, helpers: Helper[]): void {
  for (const h of helpers) {
    plan.add(Op.HELPER, h.desc, { flags: h.mounts ? OpFlag.JOIN_NS | OpFlag.READY_MOUNT : 0, ints: [h.timeoutMs, h.readyFd ?? -1, h.quiet ? 1 : 0], strs: [h.ready, ...h.argv] });
    for (const r of h.api?.requests ?? []) plan.add(Op.API, r.desc, { strs: [h.api!.socket, r.json] });
  }
}

function addJoinCgroup(plan: Plan, cgroup: string): void {
  plan.add(Op.WRITE, `move the container into its cgroup ${cgroup}`, { strs: [`${cgroup}/cgroup.procs`, "{pid}"] });
}

type UserNsContext = Pick<CompileContext, "uid" | "gid" | "helper" | "hint">;
type Maps = { uidMappings: IdMapping[]; gidMappings: IdMapping[] };

/** One op run as root of a user namespace with the store's maps, and waited for. */
function inUserNamespace(code: OpCode, desc: string, strs: string[], maps: Maps, ctx: UserNsContext): Plan {
  const plan = new Plan();
  addNamespaces(plan, ["user"], maps.uidMappings, maps.gidMappings, ctx);
  plan.add(Op.PDEATHSIG, "die with the stage", { ints: [SIGKILL] });
  plan.add(code, desc, { strs });
  plan.add(Op.SUPERVISE, "wait for it", { ints: [0, FORWARDED_SIGNALS] });
  return plan;
}

/** Unpack records from stdin into dir, so that files get the container's own owners (ffi/unpack.c). */
export function compileUnpack(dir: string, maps: Maps, ctx: UserNsContext): Plan {
  return inUserNamespace(Op.UNPACK, `unpack into ${dir}`, [dir], maps, ctx);
}

/** Copy image layers (bottom first) into dir as their overlay would show them, where overlayfs cannot be had. */
export function compileMerge(dir: string, layers: string[], maps: Maps, ctx: UserNsContext): Plan {
  return inUserNamespace(Op.MERGE, `copy the image's layers into ${dir}`, [dir, ...layers], maps, ctx);
}

/** Remove trees made by compileUnpack: outside the user namespace, files owned by subordinate ids cannot be. */
export function compileRmtree(paths: string[], maps: Maps, ctx: UserNsContext): Plan {
  return inUserNamespace(Op.RMTREE, `remove ${paths.join(", ")}`, paths, maps, ctx);
}

/**
 * Write the records of a file system to stdout (ffi/unpack.c, OP_PACK), read
 * as root of a user namespace with the store's maps, so owners come out as
 * the container's ids. With more than one directory, they are read through
 * a read-only overlay (top first) mounted at `at` in a mount namespace of
 * their own (or fuse-overlayfs, see fuseOverlayHelper); with one, that
 * directory is read as it is.
 */
export function compilePack(dirs: string[], at: string, maps: Maps, ctx: UserNsContext, fuse?: string, live = false): Plan {
  const plan = new Plan();
  // fuse-overlayfs (this path to it), read-only: it reads the upper layers it wrote (it marks opaque directories its own way)
  const helper = fuse && dirs.length > 1 ? [fuseOverlayHelper(fuse, at, dirs)] : [];
  addNamespaces(plan, ["user", "mount"], maps.uidMappings, maps.gidMappings, ctx, helper);
  plan.add(Op.PDEATHSIG, "die with the stage", { ints: [SIGKILL] });
  let root = dirs[0]!;
  if (dirs.length > 1) {
    makePrivate(plan);
    if (!helper.length) addOverlay(plan, at, "the layers", dirs);
    root = at;
  }
  // live: a running container's (not to be read in place), whose files change as they are read (taken as they are, not refused)
  plan.add(Op.PACK, `read ${root}`, { strs: [root], ints: [live ? 1 : 0, 0] });
  plan.add(Op.SUPERVISE, "wait for it", { ints: [0, FORWARDED_SIGNALS] });
  return plan;
}

/**
 * Write a running container's files as records (OP_PACK): join its user and
 * mount namespaces, as `exec` does, and read its root mount alone, through
 * its own overlayfs, as it is while the container writes (a second overlay
 * of its layers would have its upper layer in use by two mounts, which the
 * kernel warns of). Its ids come out as the container's, which are the
 * store's: run maps every container of the store as the store is mapped.
 */
export function compileLivePack(target: { pid: number; starttime: string }, ref: string): Plan {
  const plan = new Plan();
  // stopped meanwhile, or its root has mounts locked on it: the stage says nothing, and ends with STAGE_UNREAD
  plan.add(Op.JOIN, `join container ${ref}`, { flags: OpFlag.GONE_QUIET, ints: [target.pid, CLONE.NEWUSER | CLONE.NEWNS], strs: [target.starttime] });
  plan.add(Op.CLONE, "start the reader", { ints: [0] });
  plan.add(Op.RELEASE, "let it read");
  plan.add(Op.PDEATHSIG, "die with the stage", { ints: [SIGKILL] });
  // live: its files change as they are read (taken as they are, not refused)
  plan.add(Op.PACK, `read the root of container ${ref}`, { strs: ["/"], ints: [1, 1] });
  plan.add(Op.SUPERVISE, "wait for it", { ints: [0, FORWARDED_SIGNALS] });
  return plan;
}

function addDevices(plan: Plan): void {
  for (const [name, major, minor] of DEVICES) {
    plan.add(Op.MOUNT, `bind /dev/${name}`, {
      strs: [`/dev/${name}`, `/dev/${name}`, "", ""],
      ints: [MS.BIND, Create.FILE, makedev(major, minor)],
    });
  }
  for (const [target, link] of DEV_LINKS) plan.add(Op.SYMLINK, `link ${link} to ${target}`, { strs: [target, link] });
}

interface MountEnv {
  ns: Set<string>;
  uidMaps: IdMapping[];
  gidMaps: IdMapping[];
  ctx: CompileContext;
}

function compileMount(plan: Plan, m: Mount, env: MountEnv): void {
  const dest = join(m.destination);
  const o = parseMountOptions(m.options);
  const type = m.type ?? "";
  let source = m.source ?? "";

  if (type === "sysfs" && !env.ns.has("network")) {
    // only the owner of a network namespace may mount sysfs: bind the host's, read-only
    return addBind(plan, "/sys", dest, parseMountOptions(["rbind", "nosuid", "noexec", "nodev", "rro"]), env.ctx);
  }
  if (type === "bind" || (o.flags & MS.BIND) !== 0) {
    if (!source.startsWith("/")) {
      if (!env.ctx.bundleDir) throw new BunkerError(`bind mount source "${source}" for ${dest} is not an absolute path`);
      source = `${env.ctx.bundleDir}/${source}`;
    }
    return addBind(plan, join(source), dest, o, env.ctx);
  }
  if (type === "cgroup" || type === "cgroup2") {
    // cgroup2 only mounts inside a cgroup namespace of our own; on a host
    // without one (or on a v1-only host) /sys/fs/cgroup stays empty
    if (!env.ns.has("cgroup")) return;
    plan.add(Op.MOUNT, `mount cgroup2 on ${dest}`, {
      flags: OpFlag.OPTIONAL,
      strs: ["cgroup2", dest, "cgroup2", ""],
      ints: [o.flags, Create.DIR, -1],
    });
    return;
  }
  let data = o.data;
  if (type === "devpts") {
    // uid=/gid= options name ids that must exist in the user namespace
    data = data
      .split(",")
      .filter((kv) => {
        const [k, v] = kv.split("=");
        if (k === "gid") return mapsContain(env.gidMaps, Number(v));
        if (k === "uid") return mapsContain(env.uidMaps, Number(v));
        return kv !== "";
      })
      .join(",");
  }
  plan.add(Op.MOUNT, `mount ${type || source} on ${dest}`, {
    strs: [source || type, dest, type, data],
    ints: [o.flags, Create.DIR, -1],
  });
  if (o.propagation) addPropagation(plan, dest, o.propagation);
}

function addBind(plan: Plan, source: string, dest: string, o: ParsedMountOptions, ctx: CompileContext): void {
  const kind = ctx.kind(source);
  if (!kind) throw new BunkerError(`bind mount source ${source} does not exist`);
  plan.add(Op.MOUNT, `bind ${source} on ${dest}`, {
    flags: o.recursiveReadonly ? OpFlag.RECURSIVE_RO : 0,
    strs: [source, dest, "", ""],
    ints: [o.flags | MS.BIND, kind === "dir" ? Create.DIR : Create.FILE, -1],
  });
  if (o.propagation) addPropagation(plan, dest, o.propagation);
}

function addPropagation(plan: Plan, dest: string, propagation: number): void {
  plan.add(Op.MOUNT, `set propagation of ${dest}`, { strs: ["", dest, "", ""], ints: [propagation, Create.NONE, -1] });
}

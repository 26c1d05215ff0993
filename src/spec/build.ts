// `bunker run` flags (Docker's meanings) -> an OCI runtime spec.
import { records } from "../etcfile.ts";
import { BunkerError } from "../errors.ts";
import { adjustCaps, DEFAULT_CAPS } from "../linux/caps.ts";
import { mapsContain, type MapChoice } from "../linux/idmap.ts";
import { readInRoot } from "../linux/sys.ts";
import { join } from "../paths.ts";
import { type LimitFlags, resourcesFromFlags } from "../runtime/cgroup.ts";
import { MODES } from "../runtime/network.ts";
import { DEFAULT_PATH, defaultMounts, defaultNamespaces, MASKED_PATHS, OCI_VERSION, READONLY_PATHS } from "./defaults.ts";
import type { Capabilities, Mount, Process, RunOptions, Spec } from "./types.ts";

export interface RunFlags {
  env: string[];
  envFile: string[];
  /** --entrypoint: replaces the image's Entrypoint and drops its Cmd ("": none, and the command must be given). */
  entrypoint?: string;
  workdir?: string;
  user?: string;
  hostname?: string;
  volume: string[];
  tmpfs: string[];
  readOnly: boolean;
  network?: string;
  init: boolean;
  tty: boolean;
  interactive: boolean;
  capAdd: string[];
  capDrop: string[];
  name?: string;
  userns?: string;
  /** Remove the container when it exits. */
  rm?: boolean;
  /** Run in the background (-d), supervised by the stage alone. */
  detach?: boolean;
  /** -d: the log's size cap (--log-opt max-size). */
  logMaxSize?: number;
  /** --memory, --cpus, --pids-limit, ...: limits through a delegated cgroup. */
  limits?: LimitFlags;
  /** -p, --dns, --add-host (used by the runtime's network setup). */
  publish?: string[];
  dns?: string[];
  addHost?: string[];
}

export interface BuildInput {
  flags: RunFlags;
  /** COMMAND [ARG...] after ROOTFS|BUNDLE; empty keeps the default. */
  command: string[];
  /** The rootfs directory on the host (for a bundle: its root.path, resolved). */
  rootfs: string;
  /** The bundle's config.json, when running a bundle (already shape-checked). */
  bundle?: Spec;
  /** The image's config ("config" of the OCI image config), when running an image. */
  image?: ImageProcess;
  /**
   * The bundle is an image's (imported from a bunker bundle): that image's config. Its Entrypoint a
   * command given keeps, as Docker keeps it; its declared volumes (the exported container's among them)
   * get mount points, as config.json mounts none; and where the bundle names no hostname, the
   * container's id is one, as for any image.
   */
  bundleImage?: ImageProcess;
  /** Reads a file of the container's file system (its /etc/passwd and /etc/group);
   * by default from the rootfs directory. */
  readRoot?: (path: string) => string | undefined;
  /** The container's id; its first 12 characters are the default hostname. */
  id: string;
  /** The host's own name, which --network host shares as Docker does. */
  hostHostname?: () => string | undefined;
  /** The id maps to use when neither the bundle nor --userns decides. */
  maps: (mode: "auto" | "single") => MapChoice;
  /** The caller's environment, for "-e NAME" and env-file lines without "=". */
  hostEnv: Record<string, string | undefined>;
  /** Reads an --env-file. */
  readFile: (path: string) => string;
}

/** What an image says about its process (Docker's and OCI's image config). */
export interface ImageProcess {
  User?: string;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
  Volumes?: Record<string, object> | null;
}

export interface Built {
  spec: Spec;
  opts: RunOptions;
  notice?: string;
}

const NO_ENTRYPOINT = `--entrypoint "" runs neither the image's Entrypoint nor its Cmd: give a command after the image name`;

export function buildSpec(input: BuildInput): Built {
  const { bundle } = input;
  // -u "" and -w "" are not given, as Docker takes them: the image's
  const flags = { ...input.flags, user: input.flags.user || undefined, workdir: input.flags.workdir || undefined };
  if (flags.network !== undefined && !(MODES as string[]).includes(flags.network)) {
    throw new BunkerError(`unknown network mode "${flags.network}": use none, host, pasta or slirp4netns`);
  }
  if (flags.userns !== undefined && flags.userns !== "auto" && flags.userns !== "single") {
    throw new BunkerError(`--userns must be auto or single, not "${flags.userns}"`);
  }
  const spec: Spec = bundle ? structuredClone(bundle) : baseSpec(flags.network !== "host");
  spec.root = { ...spec.root, path: input.rootfs };
  spec.linux ??= {};
  const proc: Process = (spec.process ??= { user: { uid: 0, gid: 0 }, cwd: "/" });

  // namespaces: user and mount always; --network picks the network namespace
  const ns = new Set((spec.linux.namespaces ?? []).map((n) => n.type));
  ns.add("user").add("mount");
  if (flags.network === "host") ns.delete("network");
  else if (flags.network !== undefined) ns.add("network"); // none, pasta, slirp4netns
  spec.linux.namespaces = [...ns].map((type) => ({ type }));

  // id maps
  let notice: string | undefined;
  if (flags.userns !== undefined || !spec.linux.uidMappings?.length || !spec.linux.gidMappings?.length) {
    const choice = input.maps((flags.userns as "auto" | "single" | undefined) ?? "auto");
    spec.linux.uidMappings = choice.uidMappings;
    spec.linux.gidMappings = choice.gidMappings;
    notice = choice.notice;
  }

  const ep = flags.entrypoint;
  if (input.image) {
    // Docker: ENTRYPOINT, then the command line's arguments or else CMD; --entrypoint X runs X,
    // --entrypoint "" no entrypoint, and either without the image's CMD (the daemon's merge()
    // takes CMD only when no Entrypoint is given; "" is given, as [""])
    const img = input.image;
    const entrypoint = ep === undefined ? (img.Entrypoint ?? []) : ep === "" ? [] : [ep];
    proc.args = [...entrypoint, ...(input.command.length ? input.command : ep === undefined ? (img.Cmd ?? []) : [])];
    if (proc.args.length === 0) throw new BunkerError(ep === "" ? NO_ENTRYPOINT : "the image has no command (no Entrypoint or Cmd): give one after the image name");
    proc.env = img.Env ?? [];
    if (img.WorkingDir) proc.cwd = img.WorkingDir.startsWith("/") ? join(img.WorkingDir) : join("/", img.WorkingDir);
  } else if (ep) {
    proc.args = [ep, ...input.command];
  } else if (ep === "" && input.bundleImage !== undefined && input.command.length === 0) {
    throw new BunkerError(NO_ENTRYPOINT); // an image's, as above: its args are its Entrypoint and Cmd
  } else if (input.command.length > 0) {
    // the command replaces the bundle's, but not the image's Entrypoint it begins with
    const kept = ep === undefined ? (input.bundleImage?.Entrypoint ?? []) : []; // --entrypoint "": none
    const keep = kept.length > 0 && kept.every((a, i) => proc.args?.[i] === a);
    proc.args = [...(keep ? kept : []), ...input.command];
  }
  if (flags.workdir !== undefined) {
    if (!flags.workdir.startsWith("/")) throw new BunkerError(`--workdir must be an absolute path, not "${flags.workdir}"`);
    proc.cwd = join(flags.workdir);
  }
  if (!bundle || flags.tty) proc.terminal = flags.tty;

  const gidMapped = (g: number) => mapsContain(spec.linux!.gidMappings!, g);
  let home: string | undefined;
  if (flags.user !== undefined || !bundle) {
    const u = resolveUser(flags.user ?? (input.image?.User || "0"), input.readRoot ?? ((p) => readInRoot(input.rootfs, p)));
    proc.user = { ...proc.user, uid: u.uid, gid: u.gid, additionalGids: u.groups.filter(gidMapped) };
    home = u.home;
    // an imported bundle's HOME was its user's, unless its image set one: another user's is looked up again, as exec -u does
    const own = (env?: string[]) => env?.some((e) => e.startsWith("HOME="));
    if (input.bundleImage && flags.user !== undefined && !own(input.bundleImage.Env)) proc.env = proc.env?.filter((e) => !e.startsWith("HOME="));
  }

  if (!bundle) proc.capabilities = dockerCaps(DEFAULT_CAPS, flags, proc.user.uid === 0);
  // an imported image run as another user: that user's, as for any image, within the bundle's bounding set
  else if (input.bundleImage && flags.user !== undefined) proc.capabilities = dockerCaps(proc.capabilities?.bounding ?? [], flags, proc.user.uid === 0);
  else if (flags.capAdd.length || flags.capDrop.length) proc.capabilities = bundleCaps(proc.capabilities ?? {}, flags);

  if (flags.hostname !== undefined) spec.hostname = flags.hostname;
  else if (!bundle && !ns.has("network")) spec.hostname = input.hostHostname?.(); // Docker's --network host
  if (!spec.hostname && ns.has("uts") && (!bundle || input.bundleImage !== undefined)) spec.hostname = input.id.slice(0, 12);
  if (flags.readOnly) spec.root.readonly = true;

  spec.mounts = [...(spec.mounts ?? []), ...userMounts(flags)];
  const limits = resourcesFromFlags(flags.limits ?? {});
  if (limits) spec.linux.resources = { ...((spec.linux.resources as object | undefined) ?? {}), ...limits };

  proc.env = buildEnv(proc.env ?? [], {
    hostname: spec.hostname,
    home,
    tty: proc.terminal === true,
    overrides: [...flags.envFile.flatMap((f) => envFileLines(parseEnvFile(input.readFile(f)), input.hostEnv)), ...flags.env],
    hostEnv: input.hostEnv,
  });

  // the image's VOLUMEs: Docker mounts an anonymous volume on each; here each is a directory of the
  // container's own layer (Podman's --image-volume=ignore), which must exist all the same
  const covered = new Set(spec.mounts.map((m) => join(m.destination)));
  const volumes = Object.keys((input.image ?? input.bundleImage)?.Volumes ?? {})
    .filter((v) => v.startsWith("/"))
    .map((v) => join(v))
    .filter((v) => v !== "/" && !covered.has(v));

  // runc forwards stdin to a bundle's terminal; `run -t` wants -i for that, as Docker does
  const interactive = flags.interactive || (bundle !== undefined && proc.terminal === true);
  return { spec, opts: { interactive, init: flags.init, name: flags.name, ...(volumes.length ? { volumes } : {}) }, notice };
}

export interface ExecFlags {
  env: string[];
  workdir?: string;
  user?: string;
  tty: boolean;
}

/** The process of `bunker exec`: the container's, with the command and -e, -w, -u, -t applied, as Docker does. */
export function execProcess(spec: Spec, command: string[], flags: ExecFlags, read: (path: string) => string | undefined, hostEnv: Record<string, string | undefined>): Process {
  const base = spec.process!;
  const proc: Process = { ...structuredClone(base), args: [...command], terminal: flags.tty };
  if (flags.workdir !== undefined) {
    if (!flags.workdir.startsWith("/")) throw new BunkerError(`--workdir must be an absolute path, not "${flags.workdir}"`);
    proc.cwd = join(flags.workdir);
  }
  let env = base.env ?? [];
  let home: string | undefined;
  if (flags.user !== undefined) {
    const u = resolveUser(flags.user, read);
    proc.user = { ...proc.user, uid: u.uid, gid: u.gid, additionalGids: u.groups.filter((g) => mapsContain(spec.linux!.gidMappings!, g)) };
    home = u.home;
    env = env.filter((e) => !e.startsWith("HOME="));
    // Docker: a user other than root keeps the bounding set, and nothing in effect
    const caps = base.capabilities ?? {};
    const root = u.uid === 0;
    const set = (c: string[] | undefined) => (root ? (c?.length ? c : caps.bounding) : []);
    proc.capabilities = { ...caps, effective: set(caps.effective), permitted: set(caps.permitted), ambient: root ? caps.ambient : [] };
  }
  proc.env = buildEnv(env, { hostname: spec.hostname, home, tty: flags.tty, overrides: flags.env, hostEnv });
  return proc;
}

function adjusted(base: readonly string[], flags: RunFlags): string[] {
  try {
    return adjustCaps(base, flags.capAdd, flags.capDrop);
  } catch (e) {
    throw new BunkerError((e as Error).message);
  }
}

/** Docker: root gets the set in effect, any other user only in the bounding set. */
function dockerCaps(base: readonly string[], flags: RunFlags, root: boolean): Capabilities {
  const caps = adjusted(base, flags);
  return { bounding: caps, effective: root ? caps : [], permitted: root ? caps : [], inheritable: [], ambient: [] };
}

/** A bundle's sets with --cap-add/--cap-drop applied to each; nothing it did not have otherwise. */
function bundleCaps(caps: Capabilities, flags: RunFlags): Capabilities {
  const out: Capabilities = {};
  for (const set of ["bounding", "effective", "permitted", "inheritable", "ambient"] as const) {
    out[set] = adjusted(caps[set] ?? [], flags);
  }
  return out;
}

function baseSpec(network: boolean): Spec {
  return {
    ociVersion: OCI_VERSION,
    process: { user: { uid: 0, gid: 0 }, args: ["sh"], env: [], cwd: "/", noNewPrivileges: true },
    mounts: defaultMounts({ network, gid5: true }),
    linux: {
      namespaces: defaultNamespaces(network),
      maskedPaths: [...MASKED_PATHS],
      readonlyPaths: [...READONLY_PATHS],
    },
  };
}

/** -v and --tmpfs, with Docker's rule that no two may share a destination. */
function userMounts(flags: RunFlags): Mount[] {
  const mounts = [...flags.volume.map(parseVolume), ...flags.tmpfs.map(parseTmpfs)];
  const seen = new Set<string>();
  for (const m of mounts) {
    if (seen.has(m.destination)) throw new BunkerError(`duplicate mount point: ${m.destination}`);
    seen.add(m.destination);
  }
  return mounts;
}

/** Docker's environment: image/bundle env, then defaults where unset, then -e and --env-file. */
export function buildEnv(
  base: string[],
  o: { hostname?: string; home?: string; tty: boolean; overrides: string[]; hostEnv: Record<string, string | undefined> },
): string[] {
  const env = new Map<string, string>();
  const set = (kv: string) => {
    const i = kv.indexOf("=");
    if (i > 0) env.set(kv.slice(0, i), kv.slice(i + 1));
  };
  base.forEach(set);
  if (!env.has("PATH")) env.set("PATH", DEFAULT_PATH);
  if (o.hostname) env.set("HOSTNAME", o.hostname);
  if (!env.has("HOME")) env.set("HOME", o.home ?? "/");
  if (o.tty && !env.has("TERM")) env.set("TERM", "xterm");
  for (const kv of o.overrides) {
    const i = kv.indexOf("=");
    if (i === 0) throw new BunkerError(`invalid environment variable "${kv}"`);
    if (i > 0) {
      set(kv);
    } else {
      const v = o.hostEnv[kv]; // "-e NAME" passes the caller's value through, or unsets
      if (v === undefined) env.delete(kv);
      else env.set(kv, v);
    }
  }
  return [...env].map(([k, v]) => `${k}=${v}`);
}

/** Lines of a Docker env file: NAME=VALUE, or NAME to pass the caller's value. */
export function parseEnvFile(text: string): string[] {
  return text
    .replace(/^\uFEFF/, "")
    .split("\n")
    .map((l) => l.replace(/\r$/, "").trimStart())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => {
      const name = l.split("=", 1)[0]!;
      if (/\s/.test(name) || name === "") throw new BunkerError(`invalid line in env file: "${l}"`);
      return l;
    });
}

/** Docker skips an env-file NAME the caller has not set (where -e NAME would unset it). */
function envFileLines(lines: string[], hostEnv: Record<string, string | undefined>): string[] {
  return lines.filter((l) => l.includes("=") || hostEnv[l] !== undefined);
}

/** An absolute destination, normalised; never the root itself. */
function destination(d: string, what: string): string {
  if (!d.startsWith("/")) throw new BunkerError(`invalid ${what}: the destination must be an absolute path`);
  const dst = join(d);
  if (dst === "/") throw new BunkerError(`invalid ${what}: cannot mount over /`);
  return dst;
}

const VOLUME_OPTIONS = new Set(["ro", "rw", "z", "Z", "shared", "rshared", "slave", "rslave", "private", "rprivate", "nocopy"]);

/** -v SRC:DST[:OPTS] as a bind mount. */
export function parseVolume(v: string): Mount {
  const parts = v.split(":");
  if (parts.length < 2 || parts.length > 3) {
    throw new BunkerError(`invalid volume "${v}": use -v /host/path:/container/path[:ro]`);
  }
  const [src, dst, opts = ""] = parts as [string, string, string?];
  if (!src.startsWith("/")) {
    throw new BunkerError(`invalid volume "${v}": the source must be an absolute host path (named volumes are not supported yet)`);
  }
  const options = ["rbind"];
  let prop = "rprivate";
  for (const o of opts ? opts.split(",") : []) {
    if (!VOLUME_OPTIONS.has(o)) throw new BunkerError(`invalid volume "${v}": unknown option "${o}"`);
    if (o === "ro" || o === "rw") options.push(o);
    else if (/^r?(shared|slave|private)$/.test(o)) prop = o;
  }
  options.push(prop);
  return { destination: destination(dst, `volume "${v}"`), type: "bind", source: join(src), options };
}

// Docker's --tmpfs options: mount(8) flags and tmpfs's own size/mode/uid/gid/nr_inodes
const TMPFS_FLAGS = new Set(["ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "sync", "async", "dirsync", "atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime", "strictatime", "nostrictatime", "private", "rprivate", "shared", "rshared", "slave", "rslave"]);
const TMPFS_VALUES = /^(size=\d+[kmgKMG%]?|mode=[0-7]{3,4}|uid=\d+|gid=\d+|nr_inodes=\d+[kmgKMG]?|nr_blocks=\d+[kmgKMG]?|huge=(never|always|within_size|advise))$/;

/** --tmpfs DST[:OPTS]; Docker's defaults are noexec, nosuid, nodev. */
export function parseTmpfs(v: string): Mount {
  const i = v.indexOf(":");
  const dst = destination(i < 0 ? v : v.slice(0, i), `--tmpfs "${v}"`);
  const opts = i < 0 ? [] : v.slice(i + 1).split(",").filter(Boolean);
  for (const o of opts) {
    if (!TMPFS_FLAGS.has(o) && !TMPFS_VALUES.test(o)) throw new BunkerError(`invalid --tmpfs "${v}": unknown option "${o}"`);
  }
  return { destination: dst, type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "noexec", ...opts] };
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  home?: string;
  groups: number[];
}

const ID = /^\d{1,10}$/;

/** -u USER[:GROUP] with names looked up in the container's /etc/passwd and /etc/group. */
export function resolveUser(spec: string, read: (path: string) => string | undefined): ResolvedUser {
  const parts = spec.split(":");
  const [userPart, groupPart] = parts as [string, string?];
  if (parts.length > 2 || userPart === "" || groupPart === "") throw new BunkerError(`invalid user "${spec}": use NAME|UID[:GROUP|GID]`);
  const passwd = records(read("/etc/passwd"));
  const numeric = ID.test(userPart);
  const entry = passwd.find((f) => (numeric ? f[2] === userPart : f[0] === userPart));
  if (!numeric && !entry) throw new BunkerError(`unable to find user ${userPart}: no matching entries in the container's /etc/passwd`);
  const uid = numeric ? Number(userPart) : Number(entry![2]);
  let gid = entry ? Number(entry[3]) : 0;
  const groupFile = records(read("/etc/group"));
  if (groupPart !== undefined) {
    if (ID.test(groupPart)) gid = Number(groupPart);
    else {
      const g = groupFile.find((f) => f[0] === groupPart);
      if (!g) throw new BunkerError(`unable to find group ${groupPart}: no matching entries in the container's /etc/group`);
      gid = Number(g[2]);
    }
  }
  for (const n of [uid, gid]) {
    if (!Number.isSafeInteger(n) || n < 0 || n > 2 ** 32 - 2) throw new BunkerError(`invalid user "${spec}"`);
  }
  // Docker (runc's GetExecUser): the user's supplementary groups only when no group is given;
  // -u USER:GROUP runs with GROUP alone
  const name = groupPart === undefined ? entry?.[0] : undefined;
  const groups = name
    ? groupFile
        .filter((f) => (f[3] ?? "").split(",").includes(name))
        .map((f) => Number(f[2]))
        .filter((g) => Number.isSafeInteger(g) && g !== gid)
    : [];
  return { uid, gid, home: entry?.[5] || undefined, groups };
}

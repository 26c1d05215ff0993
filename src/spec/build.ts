// `bunker run` flags (Docker's meanings) -> an OCI runtime spec.
import { adjustCaps, DEFAULT_CAPS } from "../linux/caps.ts";
import { readInRoot } from "../linux/rootpath.ts";
import { mapsContain, type MapChoice } from "../linux/idmap.ts";
import { DEFAULT_PATH, defaultMounts, defaultNamespaces, MASKED_PATHS, OCI_VERSION, READONLY_PATHS } from "./defaults.ts";
import type { Mount, Process, RunOptions, Spec } from "./types.ts";

export class FlagError extends Error {}

export interface RunFlags {
  env: string[];
  envFile: string[];
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
}

export interface BuildInput {
  flags: RunFlags;
  /** COMMAND [ARG...] after ROOTFS|BUNDLE; empty keeps the default. */
  command: string[];
  /** The rootfs directory on the host (for a bundle: its root.path, resolved). */
  rootfs: string;
  /** The bundle's config.json, when running a bundle. */
  bundle?: Spec;
  /** The container's id; its first 12 characters are the default hostname. */
  id: string;
  /** The id maps to use when neither the bundle nor --userns decides. */
  maps: (mode: "auto" | "single") => MapChoice;
  /** The caller's environment, for "-e NAME" and env-file lines without "=". */
  hostEnv: Record<string, string | undefined>;
  /** Reads an --env-file. */
  readFile: (path: string) => string;
}

export interface Built {
  spec: Spec;
  opts: RunOptions;
  notice?: string;
}

const NETWORKS = ["none", "host"];

export function buildSpec(input: BuildInput): Built {
  const { flags } = input;
  if (flags.network !== undefined && !NETWORKS.includes(flags.network)) {
    throw new FlagError(`network mode "${flags.network}" is not supported yet: use --network none or --network host`);
  }
  if (flags.userns !== undefined && flags.userns !== "auto" && flags.userns !== "single") {
    throw new FlagError(`--userns must be auto or single, not "${flags.userns}"`);
  }
  const spec: Spec = input.bundle ? structuredClone(input.bundle) : baseSpec(flags.network !== "host");
  spec.root = { ...spec.root, path: input.rootfs };
  spec.linux ??= {};
  const process: Process = (spec.process ??= { user: { uid: 0, gid: 0 }, cwd: "/" });

  // namespaces: user and mount always; --network picks the network namespace
  const ns = new Set((spec.linux.namespaces ?? []).map((n) => n.type));
  ns.add("user").add("mount");
  if (flags.network === "none") ns.add("network");
  if (flags.network === "host") ns.delete("network");
  spec.linux.namespaces = [...ns].map((type) => ({ type }));

  // id maps
  let notice: string | undefined;
  if (flags.userns !== undefined || !spec.linux.uidMappings?.length || !spec.linux.gidMappings?.length) {
    const choice = input.maps((flags.userns as "auto" | "single" | undefined) ?? "auto");
    spec.linux.uidMappings = choice.uidMappings;
    spec.linux.gidMappings = choice.gidMappings;
    notice = choice.notice;
  }

  if (input.command.length > 0) process.args = [...input.command];
  if (flags.workdir !== undefined) {
    if (!flags.workdir.startsWith("/")) throw new FlagError(`--workdir must be an absolute path, not "${flags.workdir}"`);
    process.cwd = flags.workdir;
  }
  if (flags.tty) process.terminal = true;
  if (!input.bundle) process.terminal = flags.tty;

  const gidMapped = (g: number) => mapsContain(spec.linux!.gidMappings!, g);
  let home: string | undefined;
  if (flags.user !== undefined) {
    const u = resolveUser(flags.user, input.rootfs);
    process.user = { ...process.user, uid: u.uid, gid: u.gid, additionalGids: u.groups.filter(gidMapped) };
    home = u.home;
  } else if (!input.bundle) {
    const u = resolveUser("0", input.rootfs);
    process.user = { uid: 0, gid: u.gid, additionalGids: u.groups.filter(gidMapped) };
    home = u.home;
  }

  // capabilities: Docker's arithmetic; a user other than root gets none in effect
  if (!input.bundle || flags.capAdd.length || flags.capDrop.length || flags.user !== undefined) {
    const base = process.capabilities?.bounding ?? DEFAULT_CAPS;
    let caps: string[];
    try {
      caps = adjustCaps(base, flags.capAdd, flags.capDrop);
    } catch (e) {
      throw new FlagError((e as Error).message);
    }
    const root = process.user.uid === 0;
    process.capabilities = {
      bounding: caps,
      effective: root ? caps : [],
      permitted: root ? caps : [],
      inheritable: [],
      ambient: [],
    };
  }

  if (flags.hostname !== undefined) spec.hostname = flags.hostname;
  if (!spec.hostname && ns.has("uts")) spec.hostname = input.id.slice(0, 12);
  if (flags.readOnly) spec.root.readonly = true;

  spec.mounts = [...(spec.mounts ?? []), ...flags.volume.map(parseVolume), ...flags.tmpfs.map(parseTmpfs)];

  process.env = buildEnv(process.env ?? [], {
    hostname: spec.hostname,
    home,
    tty: process.terminal === true,
    overrides: [...flags.envFile.flatMap((f) => parseEnvFile(input.readFile(f))), ...flags.env],
    hostEnv: input.hostEnv,
  });

  return { spec, opts: { interactive: flags.interactive, init: flags.init, name: flags.name }, notice };
}

function baseSpec(network: boolean): Spec {
  return {
    ociVersion: OCI_VERSION,
    process: {
      user: { uid: 0, gid: 0 },
      args: ["sh"],
      env: [],
      cwd: "/",
      noNewPrivileges: true,
    },
    mounts: defaultMounts({ network, gid5: true }),
    linux: {
      namespaces: defaultNamespaces(network),
      maskedPaths: [...MASKED_PATHS],
      readonlyPaths: [...READONLY_PATHS],
    },
  };
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
    if (i === 0) throw new FlagError(`invalid environment variable "${kv}"`);
    if (i > 0) {
      set(kv);
    } else {
      const v = o.hostEnv[kv]; // "-e NAME" passes the caller's value through
      if (v === undefined) env.delete(kv);
      else env.set(kv, v);
    }
  }
  return [...env].map(([k, v]) => `${k}=${v}`);
}

/** Lines of a Docker env file: NAME=VALUE, or NAME to pass the caller's value. */
export function parseEnvFile(text: string): string[] {
  return text
    .split("\n")
    .map((l) => l.replace(/\r$/, ""))
    .filter((l) => l.trim() !== "" && !l.trimStart().startsWith("#"))
    .map((l) => {
      const name = l.split("=", 1)[0]!;
      if (/\s/.test(name) || name === "") throw new FlagError(`invalid line in env file: "${l}"`);
      return l;
    });
}

const VOLUME_OPTIONS = new Set(["ro", "rw", "z", "Z", "shared", "rshared", "slave", "rslave", "private", "rprivate", "nocopy"]);

/** -v SRC:DST[:OPTS] as a bind mount. */
export function parseVolume(v: string): Mount {
  const parts = v.split(":");
  if (parts.length < 2 || parts.length > 3) {
    throw new FlagError(`invalid volume "${v}": use -v /host/path:/container/path[:ro]`);
  }
  const [src, dst, opts = ""] = parts as [string, string, string?];
  if (!src.startsWith("/")) {
    throw new FlagError(`invalid volume "${v}": the source must be an absolute host path (named volumes are not supported yet)`);
  }
  if (!dst.startsWith("/")) throw new FlagError(`invalid volume "${v}": the destination must be an absolute path`);
  if (dst.split("/").filter(Boolean).length === 0) throw new FlagError(`invalid volume "${v}": cannot mount over /`);
  const options = ["rbind"];
  let prop = "rprivate";
  for (const o of opts ? opts.split(",") : []) {
    if (!VOLUME_OPTIONS.has(o)) throw new FlagError(`invalid volume "${v}": unknown option "${o}"`);
    if (o === "ro" || o === "rw") options.push(o);
    else if (/^r?(shared|slave|private)$/.test(o)) prop = o;
  }
  options.push(prop);
  return { destination: dst, type: "bind", source: src, options };
}

/** --tmpfs DST[:OPTS]; Docker's defaults are noexec, nosuid, nodev. */
export function parseTmpfs(v: string): Mount {
  const i = v.indexOf(":");
  const dst = i < 0 ? v : v.slice(0, i);
  const opts = i < 0 ? [] : v.slice(i + 1).split(",").filter(Boolean);
  if (!dst.startsWith("/")) throw new FlagError(`invalid --tmpfs "${v}": the destination must be an absolute path`);
  return { destination: dst, type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "noexec", ...opts] };
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  home?: string;
  groups: number[];
}

/** -u USER[:GROUP] with names looked up in the container's /etc/passwd and /etc/group. */
export function resolveUser(spec: string, rootfs: string, read = readInRoot): ResolvedUser {
  const [userPart, groupPart] = spec.split(":", 2) as [string, string?];
  if (userPart === "") throw new FlagError(`invalid user "${spec}"`);
  const passwd = parseColonFile(read(rootfs, "/etc/passwd"));
  const groupFile = parseColonFile(read(rootfs, "/etc/group"));
  const numeric = /^\d+$/.test(userPart);
  const entry = passwd.find((f) => (numeric ? f[2] === userPart : f[0] === userPart));
  if (!numeric && !entry) throw new FlagError(`unable to find user ${userPart}: no matching entries in the container's /etc/passwd`);
  const uid = numeric ? Number(userPart) : Number(entry![2]);
  let gid = entry ? Number(entry[3]) : 0;
  if (groupPart !== undefined) {
    if (/^\d+$/.test(groupPart)) gid = Number(groupPart);
    else {
      const g = groupFile.find((f) => f[0] === groupPart);
      if (!g) throw new FlagError(`unable to find group ${groupPart}: no matching entries in the container's /etc/group`);
      gid = Number(g[2]);
    }
  }
  for (const n of [uid, gid]) {
    if (!Number.isSafeInteger(n) || n < 0 || n > 2 ** 32 - 2) throw new FlagError(`invalid user "${spec}"`);
  }
  const name = entry?.[0];
  const groups = name
    ? groupFile.filter((f) => (f[3] ?? "").split(",").includes(name)).map((f) => Number(f[2])).filter((g) => Number.isSafeInteger(g) && g !== gid)
    : [];
  return { uid, gid, home: entry?.[5] || undefined, groups };
}

function parseColonFile(text: string | undefined): string[][] {
  return (text ?? "")
    .split("\n")
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => l.split(":"));
}

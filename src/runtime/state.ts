// Runtime state: $XDG_RUNTIME_DIR/bunker, or a private /tmp/bunker-UID.
//
//   lock                 held while containers or names are created or removed
//   names/NAME -> ID     a container's name
//   containers/ID/
//     config.json        what it was started with (flags, spec): exec, inspect, restart
//     pid                "STAGE STAGE_START PID PID_START STARTED", written by the stage
//     exit               "STATUS FINISHED", written by the stage when the container ends
//     log, log.1         a detached container's output (CRI format; see ffi/stage.c)
//     hosts, ...         its generated /etc files
//   exits/START-ID       "STATUS FINISHED", left by a container whose directory goes
//                        when it ends (foreground, or --rm), for `bunker wait`
//
// The stage (ffi/stage.c) supervises each container and writes pid and exit
// itself, so that the state stays true when bunker is killed at any point.
// A pid is only trusted together with its start time (pid reuse).
import { BunkerError } from "../errors.ts";
import * as sys from "../linux/sys.ts";
import type { RunFlags } from "../spec/build.ts";
import type { Spec } from "../spec/types.ts";

/** A private directory of bunker's, for messages: what it is, and the variable that moves it. */
export interface DirRole {
  name: string;
  env: string;
}

const STATE: DirRole = { name: "the state directory", env: "XDG_RUNTIME_DIR" };

function stateError(e: unknown, dir: string, role = STATE): BunkerError {
  const why = e instanceof sys.SysError ? e.reason : (e as Error).message;
  return new BunkerError(`cannot use ${role.name} ${dir}: ${why}; set ${role.env} to a writable directory`);
}

/** Create dir (mode 0700) if needed and check that it is ours and private. */
export function privateDir(dir: string, role = STATE): string {
  try {
    sys.mkdir(dir, 0o700);
  } catch (e) {
    if (!(e instanceof sys.SysError && e.code === "ENOENT")) throw stateError(e, dir, role);
    const parent = dir.slice(0, dir.lastIndexOf("/"));
    throw new BunkerError(`cannot use ${role.name} ${dir}: ${parent} does not exist; set ${role.env} to a writable directory`);
  }
  const st = sys.stat(dir, false);
  if (st?.kind !== "dir") throw new BunkerError(`${role.name} ${dir} is not a directory`);
  if (st.uid !== process.getuid!()) throw new BunkerError(`${role.name} ${dir} belongs to another user (uid ${st.uid})`);
  if ((st.mode & 0o077) !== 0) {
    throw new BunkerError(`${role.name} ${dir} is open to other users (mode ${st.mode.toString(8)}): run 'chmod 700 ${dir}'`);
  }
  return dir;
}

/** Where the runtime state lives, whether or not it exists yet. */
export function statePath(): string {
  const xdg = process.env.XDG_RUNTIME_DIR;
  return xdg?.startsWith("/") ? `${xdg}/bunker` : `/tmp/bunker-${process.getuid!()}`;
}

/** The runtime state directory, created (private) if needed. */
export function stateRoot(): string {
  return privateDir(statePath());
}

/** Run fn holding the state lock: creating and removing containers and names happen one at a time. */
export function locked<T>(root: string, fn: () => T): T {
  const fd = sys.lockFile(`${root}/lock`, true)!;
  try {
    return fn();
  } finally {
    sys.close(fd);
  }
}

/** What a container was started with. */
export interface ContainerConfig {
  id: string;
  name?: string;
  created: string;
  /** `run`'s ROOTFS|BUNDLE|IMAGE, COMMAND and flags, to start it again. */
  target: string;
  command: string[];
  flags: RunFlags;
  /** The image it was made from. */
  image?: { id: string; name?: string };
  detached: boolean;
  /** The image's StopSignal, for `stop`. */
  stopSignal?: string;
  rootfs: string;
  spec: Spec;
  /** Its own cgroup (v2), when the host delegates one. */
  cgroup?: string;
}

export interface PidRecord {
  /** The stage supervising the container, and its start time. */
  stage: number;
  stageStart: string;
  /** The container's first process (its PID 1), as the host sees it. */
  pid: number;
  pidStart: string;
  started: string;
}

export interface ExitRecord {
  code: number;
  finished: string;
  /** The kernel's OOM killer struck in the container's cgroup. */
  oom: boolean;
}

export type Status = "created" | "running" | "exited";

export interface Container {
  id: string;
  dir: string;
  config: ContainerConfig;
  status: Status;
  pids?: PidRecord;
  exit?: ExitRecord;
  /** Its stage died without recording how the container ended (killed). */
  lost: boolean;
}

/** The process still runs: the pid exists, is no zombie waiting for a reaper,
 * and was started when recorded (not reused). */
export function alive(pid: number, start: string): boolean {
  const stat = sys.tryRead(`/proc/${pid}/stat`);
  const f = stat?.slice(stat.lastIndexOf(")") + 2).split(" ");
  return f !== undefined && f[0] !== "Z" && f[0] !== "X" && f[19] === start;
}

export function parsePids(text: string | undefined): PidRecord | undefined {
  const f = text?.trim().split(" ");
  if (!f || f.length !== 5 || !/^\d+$/.test(f[0]!) || !/^\d+$/.test(f[2]!)) return undefined;
  return { stage: Number(f[0]), stageStart: f[1]!, pid: Number(f[2]), pidStart: f[3]!, started: f[4]! };
}

export function parseExit(text: string | undefined): ExitRecord | undefined {
  const m = text?.match(/^(\d+)(?: (\S+))?( oom)?\s*$/);
  return m ? { code: Number(m[1]), finished: m[2] ?? "", oom: m[3] !== undefined } : undefined;
}

export function readContainer(root: string, id: string): Container | undefined {
  const dir = `${root}/containers/${id}`;
  const text = sys.tryRead(`${dir}/config.json`);
  if (!text) return undefined;
  let config: ContainerConfig;
  try {
    config = JSON.parse(text) as ContainerConfig;
  } catch {
    return undefined;
  }
  const pids = parsePids(sys.tryRead(`${dir}/pid`));
  const exit = parseExit(sys.tryRead(`${dir}/exit`));
  const up = pids !== undefined && exit === undefined && alive(pids.stage, pids.stageStart);
  const lost = pids !== undefined && exit === undefined && !up;
  const status: Status = up ? "running" : exit || lost ? "exited" : "created";
  return { id, dir, config, status, pids, exit, lost };
}

/** Every container of the runtime state, newest first. */
export function containers(): Container[] {
  const root = statePath();
  let ids: string[];
  try {
    ids = sys.readdir(`${root}/containers`);
  } catch {
    return [];
  }
  return ids
    .filter((id) => !id.endsWith(".new")) // being created
    .map((id) => readContainer(root, id))
    .filter((c): c is Container => c !== undefined)
    .sort((a, b) => (a.config.created < b.config.created ? 1 : -1));
}

/** A container, by name, full id or unique id prefix. */
export function lookup(ref: string, all = containers()): Container | undefined {
  const root = statePath();
  const owner = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(ref) ? sys.tryReadlink(`${root}/names/${ref}`) : undefined;
  const byName = owner ? all.find((c) => c.id === owner) : undefined;
  if (byName) return byName;
  const hits = all.filter((c) => c.id === ref || (ref.length >= 4 && c.id.startsWith(ref)));
  if (hits.length > 1) throw new BunkerError(`"${ref}" matches ${hits.length} containers: give more of the id`);
  return hits[0];
}

/** Change a container's config.json (dir: its state directory), under the state's lock, atomically. */
export function updateConfig(dir: string, change: (config: ContainerConfig) => void): void {
  const root = dir.slice(0, dir.lastIndexOf("/containers/"));
  locked(root, () => {
    const config = JSON.parse(sys.readFile(`${dir}/config.json`)) as ContainerConfig;
    change(config);
    sys.writeAtomic(`${dir}/config.json`, JSON.stringify(config), 0o644);
  });
}

/** Docker's rule for a container name; it is also a file name under names/, so nothing else may pass. */
export function checkContainerName(name: string): void {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/.test(name)) {
    throw new BunkerError(`invalid container name "${name}": use letters, digits, '_', '.' and '-'`);
  }
}

export class ContainerDir {
  /** ID.new until commit(): a container appears whole, with its config, or not at all. */
  dir: string;
  private readonly final: string;
  private readonly files: string[] = [];
  private nameLink?: string;

  /** A new container's directory (under the lock); with reuse, the existing one of a container started again. */
  constructor(
    readonly root: string,
    readonly id: string,
    reuse = false,
  ) {
    this.final = `${root}/containers/${id}`;
    this.dir = reuse ? this.final : `${this.final}.new`;
    try {
      sys.mkdir(`${root}/containers`, 0o700);
      sweepDebris(root);
      if (!sys.mkdir(this.dir, 0o700) && !reuse) throw new BunkerError(`container ${id} exists already`);
    } catch (e) {
      throw e instanceof BunkerError ? e : stateError(e, root);
    }
    for (const f of ["pid", "exit", "pasta.pid"]) {
      this.files.push(`${this.final}/${f}`);
      if (reuse) tryUnlink(`${this.final}/${f}`);
    }
  }

  /** Write the config and make the container visible. */
  commit(config: ContainerConfig): void {
    this.write("config.json", JSON.stringify(config));
    if (this.dir === this.final) return;
    try {
      sys.rename(this.dir, this.final);
    } catch (e) {
      throw stateError(e, this.root);
    }
    this.dir = this.final;
    for (let i = 0; i < this.files.length; i++) this.files[i] = this.files[i]!.replace(`${this.final}.new/`, `${this.final}/`);
  }

  /** Claim a name (under the lock). A foreground container whose stage was
   * killed before it could tidy up gives its name up; any other keeps it until `rm`. */
  claimName(name: string): void {
    checkContainerName(name);
    const names = `${this.root}/names`;
    const link = `${names}/${name}`;
    try {
      sys.mkdir(names, 0o700);
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          sys.symlink(this.id, link);
          this.nameLink = link;
          return;
        } catch (e) {
          if (!(e instanceof sys.SysError && e.code === "EEXIST")) throw e;
        }
        const owner = sys.readlink(link);
        if (owner === this.id) {
          this.nameLink = link;
          return;
        }
        const c = readContainer(this.root, owner);
        // a name whose container never appeared (its bunker was killed) is free
        if (c && !(c.lost && !c.config.detached)) {
          throw new BunkerError(
            `the container name "${name}" is already in use by container ${owner.slice(0, 12)}: ${c.status === "running" ? "choose another --name" : `remove it with 'bunker rm ${name}' or choose another --name`}`,
          );
        }
        if (c) removeContainerDir(c.dir);
        sys.unlink(link);
      }
    } catch (e) {
      throw e instanceof BunkerError ? e : stateError(e, names);
    }
    throw new BunkerError(`could not claim the container name "${name}"`);
  }

  /** A file of the container that the stage removes with it. */
  path(file: string): string {
    const p = `${this.dir}/${file}`;
    this.files.push(p);
    return p;
  }

  /**
   * Where the stage leaves the exit status of a container run with --rm, or
   * in the foreground, for `bunker wait` to read after the container is gone:
   * exits/START-ID, START its start in seconds. Once there are more than 64,
   * those started over an hour ago and written over an hour ago are swept
   * here: the name tells the first without a stat, so a run looks at
   * (stats) only what it is about to remove, however many there are.
   */
  exitRecord(): string {
    const dir = `${this.root}/exits`;
    sys.mkdir(dir, 0o700);
    const hourAgo = Date.now() / 1000 - 3600;
    const left = sys.readdir(dir);
    if (left.length > 64) {
      for (const f of left) {
        // (a name without a start, from an older bunker, is looked at too)
        if (!(Number(f.split("-")[0]) >= hourAgo) && (sys.stat(`${dir}/${f}`, false)?.mtime ?? 0) < hourAgo) tryUnlink(`${dir}/${f}`);
      }
    }
    return `${dir}/${Math.floor(Date.now() / 1000)}-${this.id}`;
  }

  /** A file in the state root (short, for a socket path) that the stage removes with the container. */
  rootFile(name: string): string {
    const p = `${this.root}/${name}`;
    tryUnlink(p); // left by a stage killed before it could tidy up
    this.files.push(p);
    return p;
  }

  write(file: string, data: string): string {
    const p = this.path(file);
    try {
      sys.writeFile(p, data, 0o644, true);
    } catch (e) {
      throw stateError(e, this.dir);
    }
    return p;
  }

  /** What the stage removes when the container is gone, files before their dir. */
  cleanupList(): string[] {
    // the name first: once config.json is gone the name looks free, and another container may take it
    return [...(this.nameLink ? [this.nameLink] : []), ...new Set(this.files), `${this.dir}/`];
  }

  /** Undo everything, for failures before the stage takes over. */
  remove(): void {
    removeContainerDir(this.dir);
    if (this.nameLink) tryUnlink(this.nameLink);
  }
}

function tryUnlink(path: string): void {
  try {
    sys.unlink(path);
  } catch {}
}

/** The exit status a --rm container left for `bunker wait`, taken (read once). */
export function takeExitRecord(id: string): ExitRecord | undefined {
  const dir = `${statePath()}/exits`;
  let name: string | undefined;
  try {
    name = sys.readdir(dir).find((f) => f.endsWith(`-${id}`));
  } catch {}
  if (!name) return undefined;
  const path = `${dir}/${name}`;
  const exit = parseExit(sys.tryRead(path));
  tryUnlink(path);
  return exit;
}

/**
 * What a bunker killed while creating a container leaves (call under the
 * lock, where creating happens whole): its ID.new directory, and a name
 * pointing at a container that never appeared.
 */
export function sweepDebris(root: string): void {
  const ids = new Set(sys.readdir(`${root}/containers`));
  for (const d of ids) if (d.endsWith(".new")) removeContainerDir(`${root}/containers/${d}`);
  let names: string[];
  try {
    names = sys.readdir(`${root}/names`);
  } catch {
    return;
  }
  for (const n of names) {
    const owner = sys.tryReadlink(`${root}/names/${n}`);
    if (owner !== undefined && !ids.has(owner)) tryUnlink(`${root}/names/${n}`);
  }
}

/** A container's slirp4netns API socket, in the state root: short, as socket paths must be. */
export const slirpSocketName = (id: string) => `${id.slice(0, 12)}.slirp`;

/** A container directory holds only flat files; its slirp4netns socket sits beside it. */
export function removeContainerDir(dir: string): void {
  tryUnlink(`${dir.slice(0, dir.lastIndexOf("/containers/"))}/${slirpSocketName(dir.slice(dir.lastIndexOf("/") + 1))}`);
  try {
    for (const f of sys.readdir(dir)) tryUnlink(`${dir}/${f}`);
    sys.rmdir(dir);
  } catch {}
}

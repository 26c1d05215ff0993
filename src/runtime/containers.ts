// Containers as the verbs see them: those of the runtime state (running,
// detached, or killed before they could tidy up), and the stopped containers
// of the image store, which outlive the runtime state (a reboot).
import { BunkerError } from "../errors.ts";
import { type ContainerRecord, normalizeName, Store } from "../image/store.ts";
import * as sys from "../linux/sys.ts";
import { removeCgroup } from "./cgroup.ts";
import { type Container, containers, locked, lookup, removeContainerDir, type Status, alive, sweepDebris, parseExit, readContainer, statePath, stateRoot } from "./state.ts";

export interface View {
  id: string;
  name?: string;
  image: string;
  command: string[];
  created: string;
  status: Status;
  /** Running, and frozen by `bunker pause`. */
  paused?: boolean;
  exitCode?: number;
  runtime?: Container;
  stored?: ContainerRecord;
}

/** The image as the container was started with it, while that name still names it; else its short id (Docker's ps). */
type ImageLabel = (id: string, name?: string) => string;

function imageLabel(st: Store | undefined): ImageLabel {
  const images = st?.index().images ?? [];
  return (id, name) => {
    if (name === undefined) return id.slice(7, 19);
    const named = images.find((i) => i.names.includes(normalizeName(name)));
    if (named) return named.id === id ? name : id.slice(7, 19); // the name has moved to another image since
    return id.slice(7).startsWith(name.replace(/^sha256:/, "")) ? name : id.slice(7, 19); // given by id, or its name gone
  };
}

function fromRuntime(c: Container, label: ImageLabel): View {
  const cfg = c.config;
  return {
    id: c.id,
    name: cfg.name,
    image: cfg.image ? label(cfg.image.id, cfg.image.name) : cfg.rootfs,
    command: cfg.spec.process?.args ?? [],
    created: cfg.created,
    status: c.status,
    paused: c.status === "running" && !!cfg.cgroup && sys.tryRead(`${cfg.cgroup}/cgroup.freeze`)?.trim() === "1",
    // a stage killed with its container: the container died of SIGKILL
    exitCode: c.exit?.code ?? (c.lost ? 137 : undefined),
    runtime: c,
  };
}

function fromStore(c: ContainerRecord, label: ImageLabel): View {
  return {
    id: c.id,
    name: c.name,
    image: label(c.image, c.imageName),
    command: c.command,
    created: c.created,
    status: c.exitCode === undefined ? "created" : "exited",
    exitCode: c.exitCode,
    stored: c,
  };
}

export function list(): View[] {
  const live = containers();
  const st = Store.existing(); // listing never creates the store
  const stored = st?.containers() ?? [];
  const byId = new Map(stored.map((c) => [c.id, c]));
  const label = imageLabel(st);
  const views: View[] = live.map((c) => ({ ...fromRuntime(c, label), stored: byId.get(c.id) }));
  const seen = new Set(live.map((c) => c.id));
  for (const c of stored) if (!seen.has(c.id)) views.push(fromStore(c, label));
  return views.sort((a, b) => (a.created < b.created ? 1 : -1));
}

/** A container by name or id; a clear error (125) if there is none. */
export function find(ref: string): View {
  const hit = tryFind(ref);
  if (!hit) throw new BunkerError(`no such container: ${ref} (see 'bunker ps -a')`);
  return hit;
}

/** A container by name or id, if there is one. */
export function tryFind(ref: string): View | undefined {
  const all = list();
  const rt = lookup(
    ref,
    all.flatMap((v) => (v.runtime ? [v.runtime] : [])),
  );
  return rt ? all.find((v) => v.id === rt.id) : findStored(ref, all);
}

function findStored(ref: string, all: View[]): View | undefined {
  const owner = Store.nameOwner(ref);
  return all.find((v) => v.id === owner) ?? all.find((v) => v.stored && ref.length >= 4 && v.id.startsWith(ref));
}

export function mustRun(v: View, verb: string): Container {
  if (v.status !== "running" || !v.runtime?.pids) {
    throw new BunkerError(`container ${v.name ?? v.id.slice(0, 12)} is not running: cannot ${verb} it`);
  }
  return v.runtime;
}

const SIGNALS: Record<string, number> = {
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10, SEGV: 11, USR2: 12,
  PIPE: 13, ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CONT: 18, STOP: 19, TSTP: 20, TTIN: 21, TTOU: 22,
  URG: 23, XCPU: 24, XFSZ: 25, VTALRM: 26, PROF: 27, WINCH: 28, IO: 29, PWR: 30, SYS: 31,
};

/** "TERM", "SIGTERM", "15" -> 15; real-time ones as Docker names them (glibc's SIGRTMIN is 34): "RTMIN+3" -> 37, "RTMAX-1" -> 63. */
export function signalNumber(s: string): number {
  const name = s.toUpperCase().replace(/^SIG/, "");
  const rt = /^RT(MIN|MAX)(?:([+-])(\d{1,2}))?$/.exec(name);
  const offset = rt?.[2] === undefined ? 0 : (rt[2] === "+") === (rt[1] === "MIN") ? Number(rt[3]) : Number.NaN; // MIN+n, MAX-n
  const n = /^\d+$/.test(s) ? Number(s) : rt ? (rt[1] === "MIN" ? 34 + offset : 64 - offset) : SIGNALS[name];
  if (n === undefined || !(n >= 1 && n <= 64) || (rt && n < 34)) throw new BunkerError(`invalid signal "${s}": use a name like TERM or KILL, or a number`);
  return n;
}

export const stopSignal = (c: Container) => signalNumber(c.config.stopSignal ?? "TERM");

/** How the container ended, read again (after waiting). */
export function exitCode(v: View): number | undefined {
  const now = v.runtime && readContainer(statePath(), v.id);
  if (now) return now.exit?.code ?? (now.lost ? 137 : undefined);
  return parseExit(sys.tryRead(`${Store.dataRoot()}/containers/${v.id}/exit`))?.code;
}

/** Send sig to the container's first process, if it is still the one recorded. */
export function signal(c: Container, sig: number): boolean {
  const p = c.pids!;
  if (!alive(p.pid, p.pidStart)) return false;
  try {
    process.kill(p.pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Wait until the container's stage is gone (it has recorded the exit); false on timeout. */
export async function waitStopped(c: Container, timeoutMs = Infinity): Promise<boolean> {
  const p = c.pids;
  if (!p) return true;
  const end = Date.now() + timeoutMs;
  for (let delay = 5; alive(p.stage, p.stageStart); delay = Math.min(delay * 2, 100)) {
    if (Date.now() >= end) return false;
    await Bun.sleep(delay);
  }
  return true;
}

/** Stop: sig (default TERM), then KILL after the grace period. */
export async function stop(c: Container, graceSecs: number, sig = 15): Promise<void> {
  if (signal(c, sig) && !(await waitStopped(c, graceSecs * 1000))) signal(c, 9);
  if (!(await waitStopped(c, 10_000))) {
    // the stage itself does not end: end it; its container dies with it (PDEATHSIG)
    if (alive(c.pids!.stage, c.pids!.stageStart)) process.kill(c.pids!.stage, 9);
    await waitStopped(c);
  }
}

/** Remove a container that is not running (force: stop it first with SIGKILL). */
export async function remove(v: View, force: boolean): Promise<void> {
  if (v.status === "running") {
    if (!force) throw new BunkerError(`container ${v.name ?? v.id.slice(0, 12)} is running: stop it first, or use 'rm -f'`);
    // every process of its cgroup at once (Linux 5.14), frozen or not; then the first process, as without one
    const cg = v.runtime!.config.cgroup;
    if (cg && sys.stat(`${cg}/cgroup.kill`)) sys.writeExisting(`${cg}/cgroup.kill`, "1");
    await stop(v.runtime!, 0, 9);
  }
  if (v.runtime) {
    const root = stateRoot();
    const name = v.runtime.config.name;
    // a container seen as created may have started since: its stage records its pids under this lock
    const now = locked(root, () => {
      const c = readContainer(root, v.id);
      if (c?.status === "running") return c;
      removeCgroup(v.runtime!.config.cgroup);
      removeContainerDir(v.runtime!.dir);
      if (name && sys.tryReadlink(`${root}/names/${name}`) === v.id) sys.unlink(`${root}/names/${name}`);
      sweepDebris(root);
      return undefined;
    });
    if (now) return remove({ ...v, status: now.status, runtime: now }, force);
  }
  if (v.stored) {
    const store = await Store.open();
    const root = stateRoot();
    // under the runtime's lock, as a restart makes its runtime state: it started meanwhile, or finds its files gone
    const taken = locked(root, () => readContainer(root, v.id) ?? store.takeContainer(v.stored!));
    if (typeof taken !== "function") return remove({ ...v, status: taken.status, runtime: taken }, force);
    await taken();
  }
}

/** A container as `inspect` shows it, in Docker's shape. */
export function describe(v: View) {
  const rt = v.runtime;
  // a stopped container of the store (its runtime state gone): the config it was made with
  const stored = !rt ? sys.tryRead(`${Store.dataRoot()}/containers/${v.id}/config.json`) : undefined;
  const spec = rt?.config.spec ?? (stored ? (JSON.parse(stored) as NonNullable<typeof rt>["config"]["spec"]) : undefined);
  const proc = spec?.process;
  const finished = rt?.exit?.finished ?? (v.stored ? parseExit(sys.tryRead(`${Store.dataRoot()}/containers/${v.id}/exit`))?.finished : undefined);
  const running = v.status === "running";
  // what Docker's container Config takes from the image: its labels and stop signal
  const image = v.stored ? imageConfig(v.stored.image) : undefined;
  return {
    Id: v.id,
    Name: v.name,
    Created: v.created,
    Path: v.command[0] ?? "",
    Args: v.command,
    State: {
      Status: v.status,
      Running: running,
      Pid: running ? rt!.pids!.pid : 0,
      ExitCode: v.exitCode ?? 0,
      // the kernel's OOM killer is seen only through a cgroup of the container's own
      OOMKilled: rt?.exit?.oom === true || oomKilled(rt?.config.cgroup),
      Error: rt?.lost ? "its supervisor (the stage) was killed; the container died with it" : "",
      StartedAt: rt?.pids?.started ?? "",
      FinishedAt: running ? "" : (finished ?? ""),
    },
    Image: v.image,
    Cgroup: rt?.config.cgroup ?? "",
    Detached: rt?.config.detached ?? false,
    LogPath: rt?.config.detached ? `${rt.dir}/log` : "",
    Config: {
      Hostname: spec?.hostname ?? "",
      User: proc ? `${proc.user.uid}:${proc.user.gid}` : "",
      Env: proc?.env ?? [],
      Cmd: proc?.args ?? v.command,
      WorkingDir: proc?.cwd ?? "",
      Tty: proc?.terminal === true,
      OpenStdin: rt?.config.flags.interactive === true,
      Image: rt?.config.image?.name ?? v.stored?.imageName ?? rt?.config.target ?? "",
      Labels: image?.Labels ?? {},
      StopSignal: rt?.config.stopSignal ?? image?.StopSignal ?? "SIGTERM",
      Rootfs: rt?.config.rootfs,
    },
    Mounts: (spec?.mounts ?? [])
      .filter((m) => m.type === "bind" || m.type === "tmpfs")
      .filter((m) => m.type !== "tmpfs" || !["/dev", "/dev/shm"].includes(m.destination))
      .map((m) => ({ Type: m.type, Source: m.source ?? "", Destination: m.destination, RW: !(m.options ?? []).includes("ro") })),
  };
}

/** An image's config, as the store has it; none where the store is damaged (inspect shows what it can). */
function imageConfig(id: string) {
  try {
    return Store.existing()?.index().images.find((i) => i.id === id)?.config.config;
  } catch {
    return undefined;
  }
}

/** The container's cgroup saw the OOM killer at work (memory.events: oom_kill). */
function oomKilled(cgroup: string | undefined): boolean {
  const events = cgroup ? sys.tryRead(`${cgroup}/memory.events`) : undefined;
  return Number(events?.match(/^oom_kill (\d+)$/m)?.[1] ?? 0) > 0;
}

// Runtime state: $XDG_RUNTIME_DIR/bunker, or a private /tmp/bunker-UID.
// A running container has containers/ID/ (its generated /etc files and
// state.json) and, when named, names/NAME -> ID.
import { BunkerError } from "../errors.ts";
import * as sys from "../linux/sys.ts";

function stateError(e: unknown, dir: string): BunkerError {
  const why = e instanceof sys.SysError ? e.reason : (e as Error).message;
  return new BunkerError(`cannot use the state directory ${dir}: ${why}; set XDG_RUNTIME_DIR to a writable directory`);
}

/** Create dir (mode 0700) if needed and check that it is ours and private. */
export function privateDir(dir: string): string {
  try {
    sys.mkdir(dir, 0o700);
  } catch (e) {
    if (!(e instanceof sys.SysError && e.code === "ENOENT")) throw stateError(e, dir);
    const parent = dir.slice(0, dir.lastIndexOf("/"));
    throw new BunkerError(`cannot use the state directory ${dir}: ${parent} does not exist; set XDG_RUNTIME_DIR to a writable directory`);
  }
  const st = sys.stat(dir, false);
  if (st?.kind !== "dir") throw new BunkerError(`the state directory ${dir} is not a directory`);
  if (st.uid !== process.getuid!()) throw new BunkerError(`the state directory ${dir} belongs to another user (uid ${st.uid})`);
  if ((st.mode & 0o077) !== 0) {
    throw new BunkerError(`the state directory ${dir} is open to other users (mode ${st.mode.toString(8)}): run 'chmod 700 ${dir}'`);
  }
  return dir;
}

/** Where the runtime state lives, whether or not it exists yet. */
function statePath(): string {
  const xdg = process.env.XDG_RUNTIME_DIR;
  return xdg?.startsWith("/") ? `${xdg}/bunker` : `/tmp/bunker-${process.getuid!()}`;
}

/** The runtime state directory, created (private) if needed. */
export function stateRoot(): string {
  return privateDir(statePath());
}

export interface ContainerState {
  id: string;
  name?: string;
  /** The stage's pid: bunker's own, kept across exec. */
  pid: number;
  /** Field 22 of /proc/PID/stat, to tell a reused pid from ours. */
  starttime?: string;
  rootfs: string;
  created: string;
}

export function starttime(pid: number): string | undefined {
  const stat = sys.tryRead(`/proc/${pid}/stat`);
  return stat?.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
}

/** Its stage still runs: the pid exists and was started when the state says (not reused). */
const alive = (st: ContainerState) => starttime(st.pid) === st.starttime;

export function readState(root: string, id: string): ContainerState | undefined {
  try {
    return JSON.parse(sys.readFile(`${root}/containers/${id}/state.json`)) as ContainerState;
  } catch {
    return undefined;
  }
}

/** Containers whose bunker is running, from the runtime state directory. */
export function running(): ContainerState[] {
  const root = statePath();
  let ids: string[];
  try {
    ids = sys.readdir(`${root}/containers`);
  } catch {
    return [];
  }
  return ids.map((id) => readState(root, id)).filter((s): s is ContainerState => s !== undefined && alive(s));
}

export class ContainerDir {
  readonly dir: string;
  private readonly files: string[] = [];
  private nameLink?: string;

  constructor(
    readonly root: string,
    readonly id: string,
  ) {
    this.dir = `${root}/containers/${id}`;
    try {
      sys.mkdir(`${root}/containers`, 0o700);
      if (!sys.mkdir(this.dir, 0o700)) throw new BunkerError(`container ${id} exists already`);
    } catch (e) {
      throw e instanceof BunkerError ? e : stateError(e, root);
    }
  }

  /** Claim a name, taking it over from a container that is no longer running. */
  claimName(name: string): void {
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/.test(name)) {
      throw new BunkerError(`invalid container name "${name}": use letters, digits, '_', '.' and '-'`);
    }
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
        const st = readState(this.root, owner);
        if (st && alive(st)) {
          throw new BunkerError(`the container name "${name}" is already in use by container ${owner.slice(0, 12)}: choose another --name`);
        }
        // stale: its stage was killed before it could tidy up
        removeContainerDir(`${this.root}/containers/${owner}`);
        sys.unlink(link);
      }
    } catch (e) {
      throw e instanceof BunkerError ? e : stateError(e, names);
    }
    throw new BunkerError(`could not claim the container name "${name}"`);
  }

  write(file: string, data: string): string {
    const p = `${this.dir}/${file}`;
    try {
      sys.writeFile(p, data, 0o644);
    } catch (e) {
      throw stateError(e, this.dir);
    }
    this.files.push(p);
    return p;
  }

  /** What the stage removes when the container is gone, files before their dir. */
  cleanupList(): string[] {
    return [...this.files, ...(this.nameLink ? [this.nameLink] : []), `${this.dir}/`];
  }

  /** Undo everything, for failures before the stage takes over. */
  remove(): void {
    for (const p of this.cleanupList()) {
      try {
        if (p.endsWith("/")) sys.rmdir(p);
        else sys.unlink(p);
      } catch {}
    }
  }
}

/** A container directory holds only flat files. */
function removeContainerDir(dir: string): void {
  try {
    for (const f of sys.readdir(dir)) sys.unlink(`${dir}/${f}`);
    sys.rmdir(dir);
  } catch {}
}

// The image store: $XDG_DATA_HOME/bunker (default ~/.local/share/bunker), mode 0700.
//
//   maps.json              the id maps the store's files were unpacked with
//   images.json            the index: images, their names, layers and configs
//   layers/HEX/diff/       a layer, unpacked once (overlayfs's on-disk format)
//   layers/HEX/layer.json  what the layer held that the disk could not keep
//   containers/ID/         a container made from an image: upper/, work/, rootfs/
//   tmp/R/                 staging; R/lock is held while in use, so a killed
//                          import leaves debris the next command removes
//   lock                   held while images.json changes
//
// Unpacked files belong to the container's ids (subordinate ids on the host),
// so creating and removing them happens in a user namespace (src/image/unpack.ts).
import { BunkerError } from "../errors.ts";
import { chooseMaps, type MapChoice } from "../linux/idmap.ts";
import { compileMerge, compileRmtree } from "../linux/compile.ts";
import type { Plan } from "../linux/plan.ts";
import { spawnStage } from "../linux/stage.ts";
import * as sys from "../linux/sys.ts";
import { log } from "../log.ts";
import type { RunFlags } from "../spec/build.ts";
import type { Spec } from "../spec/types.ts";
import { findHelper, identity, subIds } from "../runtime/host.ts";
import { checkContainerName, parseExit, privateDir } from "../runtime/state.ts";

/** The image config of the OCI image spec (the parts bunker uses). */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  created?: string;
  config?: {
    User?: string;
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    Volumes?: Record<string, object>;
    Labels?: Record<string, string>;
    StopSignal?: string;
  };
  rootfs?: { type: string; diff_ids: string[] };
  history?: unknown[];
}

export interface ImageRecord {
  /** sha256:HEX of the config JSON: the image id. */
  id: string;
  names: string[];
  /** Layer diff ids, bottom first. */
  layers: string[];
  config: ImageConfig;
  created: string;
  /** Bytes of files in the layers. */
  size: number;
  source: string;
  /** From a bundle: the runtime config it was exported with (without host ids). */
  runtime?: Spec;
}

export interface LayerInfo {
  diffId: string;
  entries: number;
  bytes: number;
  /** path -> [uid, gid, mode] as archived, where the disk holds something else. */
  altered: Record<string, [number, number, number]>;
  devices: string[];
  /** Extended attributes left out (of other namespaces than user.*, or too large). */
  xattrsSkipped?: number;
}

interface Index {
  images: ImageRecord[];
}

const hex = (digest: string) => digest.replace(/^sha256:/, "");

/** A container made from an image, as the store keeps it until `bunker rm`. */
export interface ContainerRecord {
  id: string;
  name?: string;
  image: string;
  imageName?: string;
  command: string[];
  created: string;
  /** The exit status, once the container has run (from its exit file). */
  exitCode?: number;
  /** "copy": its rootfs/ is a whole copy of the image (no overlayfs here); else an overlay's upper/
   * holds its changes, written by fuse-overlayfs (which marks opaque directories its own way) or the kernel. */
  storage?: "copy" | "fuse-overlayfs";
  /** How it was started: what `restart` repeats once the runtime state is gone (a foreground run, a reboot). */
  run?: StartedAs;
}

/** What a container is made of: its image, name, config, storage, and how it was started. */
interface NewContainer {
  image: ImageRecord;
  name?: string;
  spec: Spec;
  storage?: ContainerRecord["storage"];
  run: StartedAs;
}

export interface StartedAs {
  target: string;
  command: string[];
  flags: RunFlags;
}

export class Store {
  readonly root: string;
  /** Layers this process put in place (an import refused later removes those no image uses). */
  readonly created: string[] = [];
  private mapsCache?: MapChoice;
  /** This process's hold on the layers its import uses, until it registers them (holdLayer). */
  private lease?: { staging: Staging; layers: Set<string> };

  /** Where the store lives, whether or not it exists yet. */
  static dataRoot(): string {
    const data = process.env.XDG_DATA_HOME?.startsWith("/") ? process.env.XDG_DATA_HOME : `${process.env.HOME ?? "/"}/.local/share`;
    return `${data}/bunker`;
  }

  /** The container holding a name in the store, if any (without creating the store). */
  static nameOwner(name: string): string | undefined {
    return sys.tryReadlink(`${Store.dataRoot()}/names/${name}`);
  }

  /** The id of the image a container of the store was made from (without creating the store). */
  static containerImage(id: string): string | undefined {
    const text = sys.tryRead(`${Store.dataRoot()}/containers/${id}/container.json`);
    return text ? (JSON.parse(text) as ContainerRecord).image : undefined;
  }

  /** The store, if there is one (what only reads it never creates it). */
  static existing(): Store | undefined {
    return sys.stat(Store.dataRoot()) ? new Store() : undefined;
  }

  /** The store, with what killed commands left in it cleared first (every command that uses it opens it so). */
  static async open(): Promise<Store> {
    const store = new Store();
    await store.sweep();
    return store;
  }

  constructor(root = Store.dataRoot()) {
    this.root = root;
    mkdirs(this.root.slice(0, this.root.lastIndexOf("/")));
    privateDir(this.root, { name: "the image store", env: "XDG_DATA_HOME" });
    for (const d of ["layers", "containers", "tmp", "names"]) sys.mkdir(`${this.root}/${d}`, 0o700);
  }

  /** The maps the store's files belong to: chosen once, when the store is new. */
  maps(): MapChoice {
    if (this.mapsCache) return this.mapsCache;
    const file = `${this.root}/maps.json`;
    const saved = this.readJson<MapChoice>(file);
    if (saved) {
      this.mapsCache = saved;
    } else {
      const who = identity();
      const choice = chooseMaps("auto", who, () => subIds(who), findHelper);
      sys.writeAtomic(file, JSON.stringify({ uidMappings: choice.uidMappings, gidMappings: choice.gidMappings }));
      this.mapsCache = choice;
    }
    return this.mapsCache;
  }

  /** True when the store holds files of other container ids than root. */
  get ranges(): boolean {
    return this.maps().uidMappings.length > 1;
  }

  layerDir(diffId: string): string {
    return `${this.root}/layers/${hex(diffId)}`;
  }

  /** An image's layers' directories, top first, as an overlay stacks them; a layer it repeats (an image may)
   * once, where it is topmost: below, all it has is shown from there anyway (overlayfs refuses one twice). */
  diffDirs(image: ImageRecord): string[] {
    return [...new Set([...image.layers].reverse())].map((d) => `${this.layerDir(d)}/diff`);
  }

  hasLayer(diffId: string): boolean {
    return sys.stat(`${this.layerDir(diffId)}/layer.json`) !== undefined;
  }

  /**
   * Hold a layer for this process's import until endLease(), whether or not
   * the store has it yet: a sweep or an rmi meanwhile leaves it in place,
   * though no image uses it before the import registers one. Whether the
   * store has it, under the index's lock with the hold.
   */
  holdLayer(diffId: string): boolean {
    return this.locked(() => {
      // a file in a staging directory, locked while this process lives: a killed import holds nothing
      this.lease ??= { staging: this.staging(), layers: new Set() };
      if (!this.lease.layers.has(diffId)) {
        this.lease.layers.add(diffId); // held once (importLayer, then stageLayer, ask for the same layer)
        sys.writeAtomic(`${this.lease.staging.dir}/layers`, [...this.lease.layers].join("\n"));
      }
      return this.hasLayer(diffId);
    });
  }

  /** Let go of the layers holdLayer() held (once the import has registered its image, or failed). */
  async endLease(): Promise<void> {
    const lease = this.lease;
    this.lease = undefined;
    if (lease) await this.discard(lease.staging, [`${lease.staging.dir}/layers`]);
  }

  /** The layers other processes' imports hold (holdLayer), read under the index's lock. */
  private heldLayers(): string[] {
    const held: string[] = [];
    for (const name of sys.readdir(`${this.root}/tmp`)) {
      const dir = `${this.root}/tmp/${name}`;
      if (dir === this.lease?.staging.dir) continue;
      const text = sys.tryRead(`${dir}/layers`);
      if (!text) continue;
      const fd = sys.lockExisting(`${dir}/lock`);
      if (fd !== undefined) sys.close(fd); // its import is gone: it holds nothing
      else held.push(...text.split("\n").filter(Boolean));
    }
    return held;
  }

  layerInfo(diffId: string): LayerInfo {
    const info = this.readJson<LayerInfo>(`${this.layerDir(diffId)}/layer.json`);
    if (!info) throw this.damaged(`layer ${diffId} is missing`);
    return info;
  }

  /** One of the store's JSON files, or undefined when it is not there. The store writes
   * them atomically, so one that does not parse was damaged from outside. */
  readJson<T>(file: string): T | undefined {
    const text = sys.tryRead(file);
    if (!text) return undefined;
    try {
      return JSON.parse(text) as T;
    } catch (e) {
      throw this.damaged(`${file} is not valid JSON (${(e as Error).message})`);
    }
  }

  /** The error for a store changed from outside: what is wrong, and the way out. */
  damaged(what: string): BunkerError {
    return new BunkerError(`the image store is damaged: ${what}; move ${this.root} aside and import the images again`);
  }

  /** Run fn with the index locked, writing back what it returns. */
  update<T>(fn: (index: Index) => T): T {
    return this.locked(() => {
      const index = this.index();
      const out = fn(index);
      this.save(index);
      return out;
    });
  }

  private save(index: Index): void {
    sys.writeAtomic(`${this.root}/images.json`, JSON.stringify(index, null, 1));
  }

  /** Run fn with the index locked: no image comes or goes meanwhile. */
  locked<T>(fn: () => T): T {
    const fd = sys.lockFile(`${this.root}/lock`, true)!;
    try {
      return fn();
    } finally {
      sys.close(fd);
    }
  }

  index(): Index {
    return this.readJson<Index>(`${this.root}/images.json`) ?? { images: [] };
  }

  /** The index, or undefined where it was damaged from outside (what index() says). */
  private intactIndex(): Index | undefined {
    try {
      return this.index();
    } catch (e) {
      if (e instanceof BunkerError) return undefined;
      throw e;
    }
  }

  /** An image by name (with ":latest" implied), full or short id. */
  find(ref: string): ImageRecord | undefined {
    return findImage(this.index().images, ref);
  }

  containerDir(id: string): string {
    return `${this.root}/containers/${id}`;
  }

  /** A container's record: with it, the container is listed (and held while exported). */
  containerRecord(id: string): string {
    return `${this.containerDir(id)}/container.json`;
  }

  /**
   * What a container's removal at its exit (`run --rm`) takes, in order: its
   * record first, so that an export reading it meanwhile sees it gone (and
   * refuses what it read), and a removal cut short leaves a directory
   * without a record, which the next sweep clears.
   */
  containerFiles(id: string): string[] {
    return [this.containerRecord(id), this.containerDir(id)];
  }

  nameLink(name: string): string {
    return `${this.root}/names/${name}`;
  }

  /** Claim a container name for good (until `bunker rm`), as Docker does. */
  claimName(name: string, id: string): void {
    checkContainerName(name);
    const owner = Store.nameOwner(name);
    if (owner === id) return; // started again
    // a name whose container never appeared (its bunker was killed) is free
    if (owner !== undefined && !sys.stat(this.containerRecord(owner))) sys.unlink(this.nameLink(name));
    try {
      sys.symlink(id, this.nameLink(name));
    } catch (e) {
      if (!(e instanceof sys.SysError && e.code === "EEXIST")) throw e;
      throw Store.nameInUse(name, Store.nameOwner(name) ?? "?");
    }
  }

  /** The error for a name a stored container holds. */
  static nameInUse(name: string, owner: string): BunkerError {
    return new BunkerError(`the container name "${name}" is already in use by container ${owner.slice(0, 12)}: remove it with 'bunker rm ${name}' or choose another --name`);
  }

  /** Give up a name, if container id holds it. */
  releaseName(name: string, id: string): void {
    if (Store.nameOwner(name) === id) sys.unlink(this.nameLink(name));
  }

  /** The container's directory: its upper layer, overlay work dir, mount point and record (dropContainer undoes it,
   * as run does when this or what follows fails). */
  createContainer(id: string, c: NewContainer): void {
    // under the index's lock: an rmi either removed the image first (and this says so), or sees this container
    this.locked(() => {
      if (!this.index().images.some((i) => i.id === c.image.id)) {
        throw new BunkerError(`image ${c.run.target} was removed (by 'bunker rmi') while the container was made: import it again`);
      }
      const dir = this.containerDir(id);
      sys.mkdir(dir, 0o700);
      for (const d of ["upper", "work", "rootfs"]) sys.mkdir(`${dir}/${d}`, 0o755);
      const record: ContainerRecord = {
        id,
        name: c.name,
        image: c.image.id,
        imageName: c.run.target, // as given, as Docker's Config.Image
        command: c.spec.process?.args ?? [],
        created: new Date().toISOString(),
        ...(c.storage ? { storage: c.storage } : {}),
        run: c.run,
      };
      sys.writeAtomic(`${dir}/config.json`, JSON.stringify(c.spec)); // what `bunker export` carries
      sys.writeAtomic(this.containerRecord(id), JSON.stringify(record)); // last: with it, the container is listed
    });
  }

  /** Undo createContainer before anything ran: what it made is the user's own files and empty directories. */
  dropContainer(id: string): void {
    const dir = this.containerDir(id);
    if (!sys.stat(dir, false)) return;
    try {
      for (const f of sys.readdir(dir)) {
        try {
          sys.unlink(`${dir}/${f}`);
        } catch {
          sys.rmdir(`${dir}/${f}`);
        }
      }
      sys.rmdir(dir);
    } catch (e) {
      log().warn(`could not remove ${dir}, made for a container that did not start: ${(e as Error).message}`);
    }
  }

  containers(): ContainerRecord[] {
    const out: ContainerRecord[] = [];
    for (const id of sys.readdir(`${this.root}/containers`)) {
      const c = this.readJson<ContainerRecord>(this.containerRecord(id));
      if (!c) continue;
      c.exitCode = parseExit(sys.tryRead(`${this.containerDir(id)}/exit`))?.code;
      out.push(c);
    }
    return out.sort((a, b) => (a.created < b.created ? 1 : -1));
  }

  /** A stored container by name, full or short id. */
  findContainer(ref: string): ContainerRecord | undefined {
    const all = this.containers();
    return all.find((c) => c.name === ref) ?? all.find((c) => c.id === ref || (ref.length >= 4 && c.id.startsWith(ref)));
  }

  async removeContainer(c: ContainerRecord): Promise<void> {
    await this.takeContainer(c)();
  }

  /** removeContainer's quick half: its files moved aside (atomic) and its name freed; the rest, to await, removes them. */
  takeContainer(c: ContainerRecord): () => Promise<void> {
    const record = this.containerRecord(c.id);
    const fd = sys.lockExisting(record);
    if (fd === undefined && sys.stat(record, false)) {
      throw new BunkerError(`container ${c.name ?? c.id.slice(0, 12)} is being exported: remove it once that is done`);
    }
    let aside: Staging | undefined;
    try {
      aside = this.moveAside([this.containerDir(c.id)]);
    } finally {
      if (fd !== undefined) sys.close(fd);
    }
    if (c.name) this.releaseName(c.name, c.id);
    return async () => {
      if (aside) await this.discard(aside);
    };
  }

  /** A container held while an export reads it (its record's lock, which rm tries first); an error once it is gone. */
  holdContainer(c: ContainerRecord, ref: string): number {
    try {
      return sys.lockFile(this.containerRecord(c.id), true)!;
    } catch (e) {
      if (e instanceof sys.SysError && e.code === "ENOENT") throw new BunkerError(`no such container or image: ${ref} (it was removed meanwhile)`);
      throw e;
    }
  }

  /**
   * `rmi REF`, as Docker does it: a name goes, and the image with its last
   * name; an id removes the image, with all its names when forced (unforced,
   * only an image of at most one name). An image a container uses stays.
   * Returns what was done, one line each ("Untagged: NAME", "Deleted: ID").
   */
  async removeRef(ref: string, force: boolean): Promise<string[]> {
    let done: string[] = [];
    // all decided under the index's lock, on the images, names and containers there are then: another rmi, a tag,
    // an import or a run may have changed them since (a run makes its container under this lock)
    await this.removeUnused((index) => {
      const image = findImage(index.images, ref);
      if (!image) throw new BunkerError(`no such image: ${ref}`);
      const name = normalizeName(ref);
      const byName = image.names.includes(name);
      if (byName && image.names.length > 1) {
        image.names = image.names.filter((n) => n !== name);
        done = [`Untagged: ${name}`];
        return [];
      }
      if (!byName && image.names.length > 1 && !force) {
        throw new BunkerError(`image ${image.id.slice(7, 19)} has ${image.names.length} names (${image.names.join(", ")}): remove them by name, or the image with all of them: 'bunker rmi -f ${ref}'`);
      }
      const user = this.containers().find((c) => c.image === image.id);
      if (user) {
        const by = `container ${user.name ?? user.id.slice(0, 12)}`;
        if (!force || !image.names.length) throw new BunkerError(`image ${ref} is used by ${by}: remove that first ('bunker rm')${image.names.length ? ", or only untag it: 'bunker rmi -f'" : ""}`);
        // Docker's -f: the names go, and the image stays, nameless, while containers made from it do
        done = image.names.map((n) => `Untagged: ${n}`);
        image.names = [];
        return [];
      }
      index.images = index.images.filter((i) => i !== image);
      done = [...image.names.map((n) => `Untagged: ${n}`), `Deleted: ${image.id}`];
      return image.layers;
    });
    return done;
  }

  /** `tag SOURCE TARGET`: the image gets the name, which leaves any other image that had it (as Docker's). */
  tag(ref: string, name: string): void {
    const target = normalizeName(checkImageName(name));
    this.update((index) => {
      const image = findImage(index.images, ref); // as the names are now, under the lock
      if (!image) throw new BunkerError(`no such image: ${ref} (see 'bunker images')`);
      for (const other of index.images) other.names = other.names.filter((n) => n !== target);
      image.names.push(target);
    });
  }

  /**
   * Change the index (`change` returns the layers it may have left unused),
   * then remove those no image uses. All under the index's lock, so an import
   * that registers an image meanwhile either sees them gone or keeps them in
   * use; the index is written first, so a kill or a full disk leaves either
   * the image whole, or at worst a layer no image uses.
   */
  async removeUnused(change: (index: Index) => string[]): Promise<void> {
    const aside = this.locked(() => {
      const index = this.index();
      const layers = change(index);
      this.save(index);
      const inUse = new Set([...index.images.flatMap((i) => i.layers), ...this.heldLayers()]);
      return this.moveAside([...new Set(layers)].filter((l) => !inUse.has(l)).map((l) => this.layerDir(l)));
    });
    if (aside) await this.discard(aside);
  }

  /** A staging directory, locked while this process lives. */
  staging(): Staging {
    const dir = `${this.root}/tmp/${sys.randomHex(8)}`;
    sys.mkdir(dir, 0o700);
    // its lock appears locked: a sweep that finds the directory before it takes it for debris only once it is old
    const fd = sys.lockedNew(`${dir}/lock`);
    return { dir, release: () => sys.close(fd) };
  }

  /**
   * Copy an image's layers into a container's rootfs/, as their overlay would
   * show them; and, in kept.json, the identity of each copied file whose owner
   * the store keeps in metadata, by which export tells it from one the
   * container made again at its path (as overlayfs marks a copied-up file).
   */
  async copyLayers(id: string, image: ImageRecord): Promise<void> {
    const layers = this.diffDirs(image).reverse(); // bottom first
    const rootfs = `${this.containerDir(id)}/rootfs`;
    await this.inUserNamespace((ctx) => compileMerge(rootfs, layers, this.maps(), ctx), `copy the image's layers for container ${id.slice(0, 12)}`);
    const kept: Record<string, string> = {};
    for (const l of image.layers) {
      for (const path of Object.keys(this.layerInfo(l).altered)) {
        const identity = sys.fileIdentity(`${rootfs}/${path}`);
        if (identity) kept[path] = identity;
      }
    }
    if (Object.keys(kept).length) sys.writeFile(`${this.containerDir(id)}/kept.json`, JSON.stringify(kept), 0o600, true);
  }

  /** What copyLayers noted of a container's copied files (empty for one from before it did). */
  keptIdentities(id: string): Record<string, string> {
    return this.readJson<Record<string, string>>(`${this.containerDir(id)}/kept.json`) ?? {};
  }

  /**
   * Release a staging directory and remove it: by hand when nothing but its
   * lock and the caller's own files are left in it (what succeeded was moved
   * out), which spares starting a stage and the id-map helpers (~25 ms
   * here); else in the user namespace.
   */
  async discard(s: Staging, own: string[] = []): Promise<void> {
    try {
      for (const f of own) sys.unlink(f);
      if (sys.readdir(s.dir).every((n) => n === "lock")) {
        sys.unlink(`${s.dir}/lock`);
        sys.rmdir(s.dir);
        return s.release();
      }
    } catch {
      // gone meanwhile, or not ours to remove by hand: the stage's rmtree takes what is left
    }
    // files of the user namespace's own: the stage's rmtree takes them, while the lock is held (a sweep meanwhile
    // leaves the directory alone; one after a kill midway finds it unlocked, and takes it)
    try {
      await this.remove([s.dir]);
    } finally {
      s.release();
    }
  }

  /**
   * Remove layers or containers for good: each is first renamed into a
   * staging directory (atomic), then removed there. A removal killed midway
   * leaves debris in tmp/ that the next sweep takes, never a half-removed
   * layer under its name (which a later import would reuse, or fail to
   * rename over).
   */
  async retire(paths: string[]): Promise<void> {
    const aside = this.moveAside(paths);
    if (aside) await this.discard(aside);
  }

  /** Paths renamed into a new staging directory (retire's first, quick half); none there: no directory. */
  private moveAside(paths: string[]): Staging | undefined {
    if (paths.length === 0) return undefined;
    const s = this.staging();
    const moved: number[] = [];
    try {
      paths.forEach((p, i) => {
        try {
          sys.rename(p, `${s.dir}/${i}`);
          moved.push(i);
        } catch (e) {
          if (!(e instanceof sys.SysError && e.code === "ENOENT")) throw e;
        }
      });
    } catch (e) {
      // all or none: under the index's lock the index is then not written, so what it lists must stay in place
      for (const i of moved) sys.rename(`${s.dir}/${i}`, paths[i]!);
      s.release();
      throw e;
    }
    return s;
  }

  /** Remove paths with everything below them, inside the store's user namespace. */
  async remove(paths: string[]): Promise<void> {
    if (paths.length === 0) return;
    await this.inUserNamespace((ctx) => compileRmtree(paths, this.maps(), ctx), `remove ${paths.join(", ")} from the store`);
  }

  /** A plan of one op in the store's user namespace, run to its end. */
  private async inUserNamespace(plan: (ctx: { uid: number; gid: number; helper: typeof findHelper }) => Plan, what: string): Promise<void> {
    const who = identity();
    const stage = await spawnStage(plan({ uid: who.uid, gid: who.gid, helper: findHelper }));
    sys.close(stage.stdin);
    sys.close(stage.stdout);
    const code = await stage.proc.exited;
    if (code !== 0) throw new BunkerError(`could not ${what} (exit ${code})`);
  }

  /** Remove staging directories whose process is gone (an import killed midway). */
  async sweep(): Promise<void> {
    const stale: string[] = [];
    // the locks of debris stay held until it is gone: another command's sweep, meanwhile, leaves it to this one
    const held: number[] = [];
    try {
      for (const name of sys.readdir(`${this.root}/tmp`)) {
        const dir = `${this.root}/tmp/${name}`;
        const fd = sys.lockExisting(`${dir}/lock`);
        if (fd !== undefined) {
          held.push(fd);
          stale.push(dir);
          continue;
        }
        // locked (in use), removed meanwhile by its owner, or no lock yet: being made now
        // (the lock appears locked), or its maker was killed right after mkdir (then old)
        const made = sys.stat(dir, false);
        if (made && !sys.stat(`${dir}/lock`, false) && Date.now() / 1000 - made.mtime > 60) stale.push(dir);
      }
      await this.remove(stale);
    } finally {
      for (const fd of held) sys.close(fd);
    }
    // a container's directory without its record: what a run killed while it made one left (made under the index's lock)
    const unmade = this.locked(() => sys.readdir(`${this.root}/containers`).filter((id) => !sys.stat(this.containerRecord(id), false)));
    await this.retire(unmade.map((id) => this.containerDir(id)));
    // a layer comes into place whole (its layer.json inside): one without it is what a removal killed midway left;
    // one that no image uses and no live import holds, what an import killed (or refused on a full disk) or an rmi cut short left
    const aside = this.locked(() => {
      const images = this.intactIndex()?.images;
      const used = new Set([...(images ?? []).flatMap((i) => i.layers), ...this.heldLayers()].map(hex));
      // an index damaged from outside says nothing of what is used: then only what is half removed goes (the command that reads it says so)
      const layers = sys.readdir(`${this.root}/layers`).filter((h) => (images && !used.has(h)) || !sys.stat(`${this.root}/layers/${h}/layer.json`, false));
      return this.moveAside(layers.map((h) => `${this.root}/layers/${h}`));
    });
    if (aside) await this.discard(aside);
  }
}

export interface Staging {
  dir: string;
  release(): void;
}

/** An image of a list by name (with ":latest" implied), full or short id. */
function findImage(images: ImageRecord[], ref: string): ImageRecord | undefined {
  const named = images.find((i) => i.names.includes(normalizeName(ref)));
  if (named) return named;
  // an id, or at least 4 hex digits of one ("sha256:" counts for none); one image only, as Docker's prefixes
  if (!/^(sha256:)?[0-9a-f]{4,64}$/.test(ref)) return undefined;
  const hits = images.filter((i) => hex(i.id).startsWith(hex(ref)));
  if (hits.length > 1) throw new BunkerError(`${ref} begins the ids of ${hits.length} images: give more of it`);
  return hits[0];
}

/** Docker's reference grammar: [HOST[:PORT]/]COMPONENT[/COMPONENT...][:TAG], components lower-case, joined by one '.', '_', "__" or dashes. */
const COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const IMAGE_NAME = new RegExp(`^(?:[a-zA-Z0-9]+(?:[.-][a-zA-Z0-9]+)*(?::[0-9]+)?/)?${COMPONENT}(?:/${COMPONENT})*(?::[\\w][\\w.-]{0,127})?$`);

/** Whether a name is one `import --name` and `tag` take. */
export const validImageName = (name: string): boolean => name.length <= 255 && IMAGE_NAME.test(name);

/** A name the user gives an image (import --name, tag): Docker's lower-case repository, and an optional tag. */
export function checkImageName(name: string): string {
  if (!validImageName(name)) {
    throw new BunkerError(`invalid image name "${name}": use lower-case letters and digits, joined by '.', '_' or '-', parts by '/', an optional HOST[:PORT]/ first and :TAG last`);
  }
  return name;
}

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
export const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");

/** What is wrong with an image config's shape, in the fields bunker reads, or undefined. */
export function malformedConfig(config: unknown): string | undefined {
  if (!isObject(config)) return "is not a JSON object";
  const c = config.config;
  if (c === undefined || c === null) return undefined;
  const bad =
    !isObject(c) ||
    ["Env", "Entrypoint", "Cmd"].some((k) => c[k] !== undefined && c[k] !== null && !isStrings(c[k])) ||
    ["User", "WorkingDir", "StopSignal"].some((k) => c[k] !== undefined && typeof c[k] !== "string") ||
    ["Volumes", "Labels"].some((k) => c[k] !== undefined && c[k] !== null && !isObject(c[k]));
  return bad ? "has a malformed config (Env, Cmd, Entrypoint, User, WorkingDir, ...)" : undefined;
}

/** A name an archive may give its image ([host[:port]/]path[:tag] or @sha256:HEX): printable, no spaces, bounded. */
export const ARCHIVE_NAME = /^[A-Za-z0-9][A-Za-z0-9._\/:@+-]{0,254}$/;

/** "busybox" -> "busybox:latest"; a digest reference stays as it is. */
export function normalizeName(ref: string): string {
  if (ref.includes("@")) return ref;
  const slash = ref.lastIndexOf("/");
  return ref.slice(slash + 1).includes(":") ? ref : `${ref}:latest`;
}

function mkdirs(dir: string): void {
  const parts = dir.split("/").filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    try {
      sys.mkdir(`/${parts.slice(0, i).join("/")}`, 0o755);
    } catch (e) {
      if (!(e instanceof sys.SysError) || (e.code !== "EACCES" && e.code !== "EROFS")) throw e;
      // a parent we may not write but that exists is fine; mkdir of the next one says if not
    }
  }
}



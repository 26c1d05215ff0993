// bunker export CONTAINER|IMAGE [-o FILE]: one file (or stream) that carries the app.
import { BunkerError, ReportedError } from "../errors.ts";
import { type ContainerRecord, type ImageRecord, Store } from "../image/store.ts";
import { encodeHeader, END_OF_ARCHIVE, padding, type TarHeader } from "../image/tar.ts";
import { decodeName } from "../image/names.ts";
import { decodeRecordHead, U } from "../image/unpack.ts";
import { compileLivePack, compilePack } from "../linux/compile.ts";
import { type Plan, STAGE_UNREAD } from "../linux/plan.ts";
import { spawnStage } from "../linux/stage.ts";
import * as sys from "../linux/sys.ts";
import { findHelper, fuseOverlayfs, identity, storageMode } from "../runtime/host.ts";
import { type Container, readContainer, statePath } from "../runtime/state.ts";
import { buildSpec, type RunFlags } from "../spec/build.ts";
import type { Spec } from "../spec/types.ts";
import { type BundleManifest, DIGESTS, Digests, FORMAT, MANIFEST, portableSpec, ROOTFS, row, VERSION } from "./format.ts";
import { type Codec, FrameWriter, STDOUT } from "./frames.ts";
import { Progress } from "./progress.ts";

const TYPES: Record<number, TarHeader["type"]> = { [U.DIR]: "dir", [U.FILE]: "file", [U.SYMLINK]: "symlink", [U.HARDLINK]: "hardlink", [U.FIFO]: "fifo" };

/** The records end before their end record: the stage stopped. */
class Ended extends BunkerError {}

/** The stage's status once it has printed what failed (ffi/stage.c). */
const STAGE_FAILED = 125;

/**
 * The records ffi/unpack.c's OP_PACK writes, read from its pipe with blocking
 * reads (the stage runs on its own; the frames compress on other threads):
 * heads and names through a small buffer, and file data, past what a read
 * of heads brought along, straight into the bundle's frames.
 */
class PackReader {
  private readonly buf = new Uint8Array(1 << 16);
  private start = 0;
  private end = 0;
  /** Some record came. */
  started = false;

  constructor(
    private readonly fd: number,
    /** What is read, for messages. */
    private readonly ref: string,
    /** It is a running container's. */
    private readonly live = false,
  ) {}

  /** Exactly n bytes (at most the buffer's size), valid until the next call. */
  private exact(n: number): Uint8Array {
    if (this.end - this.start < n) {
      this.buf.copyWithin(0, this.start, this.end);
      this.end -= this.start;
      this.start = 0;
      while (this.end < n) {
        const got = sys.readInto(this.fd, this.buf.subarray(this.end));
        if (got === 0) throw new Ended("reading the file system stopped early");
        this.end += got;
        this.started = true;
      }
    }
    this.start += n;
    return this.buf.subarray(this.start - n, this.start);
  }

  /** The next entry's header (its xattrs gathered), or undefined at the end. */
  next(): TarHeader | undefined {
    let xattrs: Record<string, Uint8Array> | undefined;
    for (;;) {
      const { pathLen, linkLen, record } = decodeRecordHead(this.exact(40));
      const { type, size } = record;
      if (type === U.END) return undefined;
      const path = decodeName(this.exact(pathLen));
      if (type === U.FAIL) throw this.failed(path, size);
      const link = linkLen ? decodeName(this.exact(linkLen)) : "";
      if (type === U.XATTR) {
        (xattrs ??= {})[link] = this.exact(size).slice();
        continue;
      }
      const kind = TYPES[type];
      if (!kind) throw new BunkerError(`reading the file system: unknown record type ${type}`);
      return { type: kind, path, mode: record.mode, uid: record.uid, gid: record.gid, mtime: record.mtime, size: kind === "file" ? size : 0, linkname: link, xattrs };
    }
  }

  /** The walk's own account of where and why it stopped (U_FAIL). */
  private failed(path: string, errno: number): BunkerError {
    const shown = `/${path.length > 120 ? `${path.slice(0, 50)}...${path.slice(-50)}` : path}`;
    const err = new sys.SysError("read", errno);
    if (err.code === "ESTALE") return new BunkerError(`${shown} in ${this.ref} changed while it was read${this.live ? " (it is running): export it again, or stop it first" : ": export it again"}`);
    const why = err.code === "ENAMETOOLONG" ? " (a path in a bundle is at most 4095 bytes)" : "";
    return new BunkerError(`cannot export ${this.ref}: reading ${shown}: ${err.reason}${why}`);
  }

  /** Up to dst.length bytes of the current file's data into dst: what is buffered, else one read. */
  into(dst: Uint8Array): number {
    if (this.start === this.end) return sys.readInto(this.fd, dst);
    const n = Math.min(dst.length, this.end - this.start);
    dst.set(this.buf.subarray(this.start, this.start + n));
    this.start += n;
    return n;
  }
}

export interface ExportOptions {
  output: string;
  codec: Codec;
  progress: boolean;
}

export interface ExportSummary {
  output: string;
  digest: string;
  entries: number;
  bytes: number;
  compressed: number;
  seconds: number;
}

/** What is exported: a stored container (image + its changes) or an image. */
function source(store: Store, ref: string): { kind: "container" | "image"; image: ImageRecord; container?: ContainerRecord; running?: Container } {
  const container = store.findContainer(ref);
  if (container) {
    const image = store.index().images.find((i) => i.id === container.image);
    if (!image) throw new BunkerError(`the image of container ${ref} is gone from the store`);
    // a running one too, as Docker exports it: its files as they are while they are read
    const rt = readContainer(statePath(), container.id);
    return { kind: "container", image, container, running: rt?.status === "running" ? rt : undefined };
  }
  const image = store.find(ref);
  if (!image) throw new BunkerError(`no such container or image: ${ref}`);
  return { kind: "image", image };
}

/** The runtime config: the container's own, or what `bunker run IMAGE` would use. */
function runtimeSpec(store: Store, image: ImageRecord, container?: ContainerRecord): Spec {
  const saved = container && store.readJson<Spec>(`${store.containerDir(container.id)}/config.json`);
  if (saved) {
    // a host name given with -h travels; the one it had by default (its id, or the host's with --network host) is no other container's
    const defaulted = container.run ? container.run.flags.hostname === undefined : saved.hostname === container.id.slice(0, 12);
    if (defaulted) {
      delete saved.hostname;
      if (saved.process) saved.process.env = saved.process.env?.filter((e) => !e.startsWith("HOSTNAME="));
    }
    return saved;
  }
  const flags: RunFlags = { env: [], envFile: [], volume: [], tmpfs: [], readOnly: false, init: false, tty: false, interactive: false, capAdd: [], capDrop: [] };
  // an image without a command (`docker export`, then import) keeps having none
  const cmd = image.config.config ?? {};
  const commandless = !image.runtime && !cmd.Entrypoint?.length && !cmd.Cmd?.length;
  const spec = buildSpec({
    flags,
    command: commandless ? ["sh"] : [],
    rootfs: ROOTFS,
    bundle: image.runtime,
    image: image.runtime ? undefined : image.config.config,
    id: image.id.slice(7),
    maps: () => store.maps(),
    hostEnv: {},
    readFile: () => "",
    readRoot: () => undefined,
  }).spec;
  if (commandless) delete spec.process!.args;
  if (!image.runtime) {
    // an image has no hostname: each container made from it gets its own id as one, there as here
    delete spec.hostname;
    spec.process!.env = spec.process!.env?.filter((e) => !e.startsWith("HOSTNAME="));
  }
  return spec;
}

/**
 * Owners a one-id store kept in metadata (topmost layer wins), where the
 * container left the entry's owner and mode as the image has them on disk:
 * not where it chowned or chmodded it, or made a new one; a directory (or
 * file) merely copied up into its upper layer, or present in its whole copy,
 * keeps its owner. `layers`: the image's, top first; `changed`: its upper
 * layer, or its copy of the image; `origin`: the xattr an overlay marks a
 * copied-up file with, or, for a copy, the identities of what it copied (so
 * that one removed and made again, without it or with another, is the
 * container's own).
 */
function keptOwners(store: Store, image: ImageRecord, layers: string[], changed?: string, origin?: string | Record<string, string>): Map<string, [number, number, number]> {
  const owners = new Map<string, [number, number, number]>();
  for (const layer of image.layers) {
    for (const [path, o] of Object.entries(store.layerInfo(layer).altered)) owners.set(path, o);
  }
  if (!changed) return owners;
  for (const path of owners.keys()) {
    const now = sys.stat(`${changed}/${path}`, false);
    if (!now) continue; // unchanged (an overlay's upper layer), or gone (a copy)
    let was: sys.Stat | undefined;
    for (const l of layers) if ((was = sys.stat(`${l}/${path}`, false))) break;
    const same = was && was.kind === now.kind && was.uid === now.uid && was.gid === now.gid && was.mode === now.mode;
    const made =
      typeof origin === "object" // a copy: the identity of what was copied (none where it could not be told)
        ? origin[path] !== undefined && origin[path] !== sys.fileIdentity(`${changed}/${path}`)
        : now.kind === "dir"
          ? sys.getxattr(`${changed}/${path}`, "user.overlay.opaque") === "y"
          : origin !== undefined && !sys.hasXattr(`${changed}/${path}`, origin);
    if (!same || made) owners.delete(path);
  }
  return owners;
}

/** What the runtime keeps of a container's last start and exit: it changes when the container is started again. */
function lastStart(id: string): string {
  const dir = `${statePath()}/containers/${id}`;
  return `${sys.tryRead(`${dir}/pid`) ?? ""}|${sys.tryRead(`${dir}/exit`) ?? ""}`;
}

export async function exportBundle(ref: string, opts: ExportOptions): Promise<ExportSummary> {
  const start = performance.now();
  const store = await Store.open();
  const from = source(store, ref);
  // a container is held while it is read: `rm` refuses it meanwhile (and another export waits)
  const held = from.container && store.holdContainer(from.container, ref);
  try {
    return await writeBundle(store, ref, from, opts, start);
  } finally {
    if (held !== undefined) sys.close(held);
  }
}

async function writeBundle(store: Store, ref: string, { kind, image, container, running }: ReturnType<typeof source>, opts: ExportOptions, start: number): Promise<ExportSummary> {
  if (opts.output !== STDOUT && sys.stat(opts.output, false)) throw new BunkerError(`${opts.output} exists: remove it first, or choose another -o`);
  // a container is its upper layer over the image's, or (no overlayfs where it was made) one whole copy
  const copied = container?.storage === "copy";
  const upper = container && !copied ? `${store.containerDir(container.id)}/upper` : undefined;
  const layers = store.diffDirs(image);
  const dirs = copied ? [`${store.containerDir(container!.id)}/rootfs`] : [...(upper ? [upper] : []), ...layers];
  // fuse-overlayfs reads the upper layer it wrote; and where the kernel has no overlayfs for us, an image's layers
  let fuse: string | undefined;
  if (container?.storage === "fuse-overlayfs" || (!container && layers.length > 1 && storageMode().mode === "fuse-overlayfs")) {
    const found = fuseOverlayfs();
    if ("why" in found) throw new BunkerError(`reading ${ref} needs fuse-overlayfs, but ${found.why}`);
    fuse = found.tool;
  }
  const owners = keptOwners(store, image, layers, copied ? dirs[0] : upper, copied ? store.keptIdentities(container!.id) : fuse ? "user.fuseoverlayfs.origin" : "user.overlay.origin");
  const started = container && lastStart(container.id);
  /** The container was removed meanwhile (a running `--rm` one that exited), or, stopped at first, started again: what was read may be torn. */
  const torn = () => {
    if (!container) return undefined;
    if (!sys.stat(store.containerRecord(container.id), false)) return new BunkerError(`container ${ref} was removed while it was being exported`);
    if (!running && lastStart(container.id) !== started) return new BunkerError(`container ${ref} was started while it was being exported: export it again once it has stopped`);
    return undefined;
  };
  const spec = runtimeSpec(store, image, container);
  const manifest: BundleManifest = {
    format: FORMAT,
    version: VERSION,
    created: new Date().toISOString(),
    source: { kind, id: container?.id ?? image.id, name: container?.name ?? image.names[0] },
    image: withVolumes(image, spec),
    owners: owners.size ? Object.fromEntries(owners) : undefined,
  };
  const config = portableSpec(spec);
  // crun and runc need a map for the user namespace: the exporting user's own id, and then no mount may
  // name another (devpts's gid=5, for one); a process of other ids than root needs them mapped too: the
  // store's subordinate ranges, which crun and runc map through newuidmap and newgidmap (as this store does)
  const user = config.process?.user;
  const others = user && [user.uid, user.gid, ...(user.additionalGids ?? [])].some((id) => id !== 0);
  const { uidMappings, gidMappings } = others && store.ranges ? store.maps() : { uidMappings: [{ containerID: 0, hostID: process.getuid!(), size: 1 }], gidMappings: [{ containerID: 0, hostID: process.getgid!(), size: 1 }] };
  config.linux = { ...config.linux, uidMappings, gidMappings };
  for (const m of config.mounts ?? []) m.options = m.options?.filter((o) => !/^[ug]id=([1-9]\d*)$/.test(o));

  const out = new FrameWriter(opts.output, opts.codec);
  // an image's size is known; a container's changes are not, until they are read
  const progress = opts.progress ? Progress.forTerminal("export", kind === "image" ? image.size : undefined) : undefined;
  const digests = new Digests();
  let entries = 0;
  const now = Math.floor(Date.now() / 1000);
  // one hasher for every file in turn (digest() resets it), as import does: one per entry cost ~20 ms
  const hasher = new Bun.CryptoHasher("sha256");
  /** An entry, its data from bytes or from the pack stage (h.size bytes), and its row in the digests. */
  const put = async (h: TarHeader, data?: Uint8Array | PackReader) => {
    await out.write(encodeHeader(h));
    if (data instanceof Uint8Array) {
      hasher.update(data);
      await out.write(data);
    } else if (data) {
      for (let left = h.size; left > 0; ) {
        const room = out.room();
        const into = room.length > left ? room.subarray(0, left) : room;
        const n = data.into(into);
        if (n === 0) throw new Ended("reading the file system stopped early");
        hasher.update(into.subarray(0, n));
        left -= n;
        progress?.advance(n);
        await out.advance(n);
      }
    }
    if (h.size) await out.write(padding(h.size));
    digests.add(row(h, h.type === "file" ? hasher.digest("hex") : ""));
    entries++;
  };
  const file = (path: string, text: string) => {
    const data = new TextEncoder().encode(text);
    return put({ type: "file", path, mode: 0o644, uid: 0, gid: 0, size: data.length, mtime: now, linkname: "" }, data);
  };

  try {
    await file(MANIFEST, `${JSON.stringify(manifest, null, 1)}\n`);
    await file("config.json", `${JSON.stringify(config, null, 1)}\n`);
    await put({ type: "dir", path: ROOTFS, mode: 0o755, uid: 0, gid: 0, size: 0, mtime: now, linkname: "" });
    /** Read the file system into the bundle as a plan's stage writes it: the stage's status, or undefined if it read nothing (STAGE_UNREAD). */
    const read = async (plan: Plan): Promise<number | undefined> => {
      const stage = await spawnStage(plan);
      sys.close(stage.stdin);
      const records = new PackReader(stage.stdout, ref, running !== undefined);
      try {
        for (let h = records.next(); h; h = records.next()) {
          const kept = owners.get(h.path);
          if (kept) [h.uid, h.gid, h.mode] = kept;
          h.path = `${ROOTFS}/${h.path}`;
          if (h.type === "hardlink") h.linkname = `${ROOTFS}/${h.linkname}`;
          await put(h, h.type === "file" ? records : undefined);
        }
      } catch (e) {
        sys.close(stage.stdout);
        if (!(e instanceof Ended)) throw e;
        // the records ended where the stage failed (it has said why), or before the first (unread: see below), or its reader was killed
        const status = await stage.proc.exited;
        if (status === STAGE_UNREAD && !records.started) return undefined;
        throw status === STAGE_FAILED ? new ReportedError(e.message) : new BunkerError(`${e.message} (its reader ended with status ${status})`);
      }
      sys.close(stage.stdout);
      return await stage.proc.exited;
    };
    // a running container on the kernel's overlayfs is read through its own root mount; else its layers are read anew
    // (fuse-overlayfs and copies have no second overlay to share an upper layer, and a stop would end a fuse-overlayfs read)
    const live = container?.storage === undefined ? running?.pids : undefined;
    let code = live ? await read(compileLivePack({ pid: live.pid, starttime: live.pidStart }, ref)) : undefined;
    if (code === undefined) {
      // or it stopped before it was joined (read as a stopped one, unless it went with --rm), or pid 1 made a user and a mount namespace of its own
      const gone = torn();
      if (gone) throw gone;
      const who = identity();
      const at = store.staging();
      try {
        code = await read(compilePack(dirs, at.dir, store.maps(), { uid: who.uid, gid: who.gid, helper: findHelper }, fuse, running !== undefined));
      } finally {
        await store.discard(at);
      }
    }
    const cut = torn();
    if (cut) throw cut;
    if (code !== 0) throw new BunkerError(`reading the file system of ${ref} failed`);
    const digest = digests.digest();
    if (!digests.complete) throw new BunkerError(`${ref} has more than 500000 files: too many for one bundle`);
    await file(DIGESTS, digests.file());
    await out.write(END_OF_ARCHIVE);
    await out.close();
    progress?.done();
    return {
      output: opts.output,
      digest,
      entries,
      bytes: out.raw,
      compressed: out.compressed,
      seconds: (performance.now() - start) / 1000,
    };
  } catch (e) {
    out.abort();
    progress?.done();
    throw torn() ?? e;
  }
}

/** The image config, with the volumes the container declared (their host paths stay here). */
function withVolumes(image: ImageRecord, spec: Spec) {
  const volumes: Record<string, object> = { ...(image.config.config?.Volumes ?? {}) };
  for (const m of spec.mounts ?? []) if (m.type === "bind" && m.source !== "/sys") volumes[m.destination] = {};
  return { ...image.config, config: { ...image.config.config, Volumes: Object.keys(volumes).length ? volumes : undefined } };
}

// `bunker run`: flags -> spec -> validated -> plan -> the C stage.
import { BunkerError } from "../errors.ts";
import { log, say } from "../log.ts";
import { chooseMaps } from "../linux/idmap.ts";
import { compile } from "../linux/compile.ts";
import { detachStage, execStage } from "../linux/stage.ts";
import * as sys from "../linux/sys.ts";
import { resolve } from "../paths.ts";
import { appSpec } from "../bundle/format.ts";
import { buildSpec, type RunFlags } from "../spec/build.ts";
import { checkShape, unsupported } from "../spec/shape.ts";
import type { Spec } from "../spec/types.ts";
import { validateSpec } from "../spec/validate.ts";
import { type ImageRecord, type StartedAs, Store } from "../image/store.ts";
import { checkKernel, checkUserNamespaces, findHelper, hasNamespace, identity, storageMode, subIds } from "./host.ts";
import { checkContainerName, ContainerDir, locked, readContainer, slirpSocketName, stateRoot } from "./state.ts";
import { cgroupFiles, createCgroup, removeCgroup, resourcesFromFlags } from "./cgroup.ts";
import { signalNumber } from "./containers.ts";
import { checkDns, checkPorts, chooseMode, hostGateway, hostsFile, type NetworkMode, parseAddHost, parsePublish, pastaArgs, resolvConf, SLIRP, slirpHelper } from "./network.ts";

function kind(path: string): "dir" | "file" | undefined {
  const st = sys.stat(path);
  return st === undefined ? undefined : st.kind === "dir" ? "dir" : "file";
}

const why = (e: unknown) => (e instanceof sys.SysError ? e.reason : String(e));

/** Many problems in one line: the first, and how many more. */
function firstOf(errs: string[]): string {
  return errs[0]! + (errs.length > 1 ? ` (and ${errs.length - 1} more problems)` : "");
}

interface Target {
  rootfs: string;
  bundle?: Spec;
  bundleDir?: string;
}

/** ROOTFS or BUNDLE: a bundle is a directory holding config.json. Undefined if no directory. */
export function loadTarget(target: string): Target | undefined {
  const dir = resolve(target);
  if (kind(dir) !== "dir") return undefined;
  const configPath = `${dir}/config.json`;
  if (!sys.stat(configPath, false)) return { rootfs: dir };
  let config: unknown;
  try {
    config = JSON.parse(sys.readFile(configPath));
  } catch (e) {
    if (e instanceof SyntaxError) throw new BunkerError(`${configPath} is not valid JSON: ${e.message}`);
    throw new BunkerError(`cannot read ${configPath}: ${why(e)}`);
  }
  const errs = checkShape(config);
  if (errs.length) throw new BunkerError(`${configPath} is not an OCI runtime config: ${firstOf(errs)}`);
  const ignored = unsupported(config);
  if (ignored.length) log().warn(`config.json: ${ignored.join(", ")} ${ignored.length > 1 ? "are" : "is"} not supported yet and ignored`);
  const bundle = config as Spec;
  const rootfs = resolve(bundle.root!.path, dir);
  if (kind(rootfs) !== "dir") throw new BunkerError(`the bundle's root ${rootfs} is not a directory`);
  return { rootfs, bundle, bundleDir: dir };
}

/** A detached container's log moves to log.1 past this size, unless --log-opt max-size says otherwise. */
export const LOG_CAP = 16 << 20;

/** A container started again (restart): its id and when it was made. */
export interface Again {
  id: string;
  created: string;
  /** It was made from an image (its files are in the store). */
  fromImage: boolean;
}

/** Run a container; detached, return its id once it runs. */
export async function run(target: string, command: string[], flags: RunFlags, again?: Again): Promise<string> {
  if (flags.tty && flags.interactive && !flags.detach && !sys.isatty(0)) {
    throw new BunkerError("the input device is not a TTY: drop -t, or run from a terminal");
  }
  // before anything is made: the name becomes a file name, in the store's names/ too
  if (flags.name !== undefined) checkContainerName(flags.name);
  checkKernel();
  const hint = checkUserNamespaces();
  const who = identity();
  const id = again?.id ?? sys.randomHex(32);
  // a name is an image first, as in Docker; "/..." and "./..." are always directories
  const imageFirst = !target.startsWith("/") && !target.startsWith(".");
  // started again: the image it was made from, by id, whatever its name names now (a later import may
  // have moved the name to another image, as docker load does); one made from a directory stays one
  const madeFrom = again ? Store.containerImage(id) : undefined;
  // its record gone since restart found it: an rm took its files meanwhile
  if (again?.fromImage && madeFrom === undefined) throw new BunkerError(`container ${flags.name ?? id.slice(0, 12)} was removed meanwhile`);
  const lookUp = again ? madeFrom !== undefined : imageFirst;
  const store = lookUp && sys.stat(`${Store.dataRoot()}/images.json`) ? await Store.open() : undefined;
  const stored = again ? (madeFrom ? store?.find(madeFrom) : undefined) : store?.find(target);
  if (madeFrom && !stored) throw new BunkerError(`container ${id.slice(0, 12)} was made from image ${madeFrom.slice(7, 19)}, which is not in the store any more`);
  const local = stored ? undefined : loadTarget(target);
  if (!stored && !local) {
    throw new BunkerError(
      imageFirst
        ? `${target}: no such image in the store, and no such directory (see 'bunker images'; 'bunker import' adds one)`
        : `${target}: no such directory: give a root filesystem directory or an OCI bundle`,
    );
  }
  const img = stored ? openImage(store!, stored, id, flags, again !== undefined) : undefined;
  const stop = img?.record.config.config?.StopSignal;
  // as Docker refuses to create it: a container that `stop` could not signal
  if (stop !== undefined) {
    try {
      signalNumber(stop);
    } catch {
      throw new BunkerError(`the image's StopSignal "${stop}" is not a signal: bunker stop could not stop its container`);
    }
  }
  const { rootfs, bundle, bundleDir } = local ?? { rootfs: img!.rootfs };
  // a bundle run as it is keeps its own namespaces; otherwise pasta, slirp4netns or none
  const chosen = bundle && flags.network === undefined ? undefined : chooseMode(flags.network, findHelper);

  const built = buildSpec({
    flags: { ...flags, network: chosen?.mode },
    command,
    rootfs,
    id,
    hostHostname: () => sys.tryRead("/proc/sys/kernel/hostname")?.trim(),
    maps: img ? () => img.maps : (mode) => chooseMaps(mode, who, () => subIds(who), findHelper),
    // an imported bundle's config, as import left it (again for what older imports stored)
    bundle: bundle ?? (img?.record.runtime && appSpec(img.record.runtime).spec),
    image: img?.record.runtime ? undefined : img?.record.config.config,
    bundleImage: img?.record.runtime ? (img.record.config.config ?? {}) : undefined,
    readRoot: img?.readRoot,
    hostEnv: process.env,
    readFile: (f) => {
      try {
        return sys.readFile(f);
      } catch (e) {
        throw new BunkerError(`cannot read env file ${f}: ${why(e)}`);
      }
    },
  });
  const { spec, opts } = built;
  // "cgroup where available": a kernel without cgroup namespaces runs without one
  if (!hasNamespace("cgroup")) spec.linux!.namespaces = spec.linux!.namespaces!.filter((n) => n.type !== "cgroup");
  const mode: NetworkMode = chosen?.mode ?? (spec.linux!.namespaces!.some((n) => n.type === "network") ? "none" : "host");
  const net = networkSetup(mode, flags);

  const errs = validateSpec(spec);
  if (errs.length) throw new BunkerError(firstOf(errs));
  if (built.notice) log().info(built.notice);
  if (chosen?.notice) log().info(chosen.notice);
  checkPorts(net.ports);
  // limits from the command line must hold; those an image, bundle or config.json carries hold where they can
  const cgroup = await createCgroup(id, spec, cgroupFiles(resourcesFromFlags(flags.limits ?? {}) ?? {}).controllers);

  const root = stateRoot();
  const state = claim(() => locked(root, () => {
    // a container is started again only once it has stopped (two restarts at once: one wins)
    if (again && readContainer(root, id)?.status === "running") throw new BunkerError(`container ${id.slice(0, 12)} is running already`);
    // and only while it is there: an rm meanwhile takes its files under this lock
    if (again && img && !sys.stat(store!.containerRecord(id), false)) throw new BunkerError(`container ${id.slice(0, 12)} was removed meanwhile`);
    const dir = new ContainerDir(root, id, again !== undefined);
    try {
      opts.name ??= generateName(root);
      img?.claimName(opts.name);
      if (!img) refuseStoredName(opts.name, id);
      dir.claimName(opts.name);
      img?.record_(spec, opts.name, { target, command, flags });
      dir.commit({
        id,
        name: opts.name,
        created: again?.created ?? new Date().toISOString(),
        target,
        command,
        flags,
        image: img && { id: img.record.id, name: target }, // as given, as Docker's Config.Image
        detached: flags.detach === true,
        stopSignal: img?.record.config.config?.StopSignal,
        rootfs,
        spec,
        cgroup,
      });
      return dir;
    } catch (e) {
      if (!again) {
        dir.remove();
        img?.dropRecord(); // the store's record, whole or part made
        if (opts.name) img?.releaseName(opts.name); // and its claim of the name
      }
      throw e;
    }
  }), () => removeCgroup(cgroup));
  try {
    await img?.prepare();
    const resolv = resolvConf(mode, net.dns);
    const etcFiles = [
      { destination: "/etc/hosts", source: state.write("hosts", hostsFile({ hostname: spec.hostname, name: flags.name, mode, extra: net.hosts })) },
      { destination: "/etc/resolv.conf", source: state.write("resolv.conf", resolv.text) },
    ];
    if (spec.hostname) etcFiles.push({ destination: "/etc/hostname", source: state.write("hostname", `${spec.hostname}\n`) });
    // a detached container stays, with its log and exit status, until `bunker rm` (or --rm)
    const detach = flags.detach ? { log: state.path("log"), logCap: flags.logMaxSize ?? LOG_CAP } : undefined;
    if (detach) state.path("log.1");
    const record = { path: state.path("pid"), lock: `${root}/lock` };
    // a container whose directory goes when it exits (foreground, or --rm) leaves its status beside it for `bunker wait`
    const status = [...(detach ? [state.path("exit")] : []), ...(img ? [`${img.dir}/exit`] : []), ...(flags.rm || !detach ? [state.exitRecord()] : [])];
    const pastaPid = mode === "pasta" ? state.path("pasta.pid") : undefined;
    const plan = compile(spec, opts, {
      uid: who.uid,
      gid: who.gid,
      helper: findHelper,
      bundleDir,
      etcFiles,
      cleanup: !detach || flags.rm ? [...state.cleanupList(), ...(img && flags.rm ? [img.nameLink(opts.name!)] : []), ...(cgroup ? [`${cgroup}/`] : [])] : [],
      hint,
      kind,
      overlay: img?.overlay,
      after: { status, remove: img && flags.rm ? img.files : undefined },
      record,
      detach,
      cgroup,
      helpers:
        mode === "pasta"
          ? [{ desc: "start pasta", argv: pastaArgs(chosen!.helper!, { ports: net.ports, ready: pastaPid!, mapGateway: net.mapGateway, dnsForward: resolv.forward }), ready: pastaPid!, timeoutMs: 10_000 }]
          : mode === "slirp4netns"
            ? [slirpHelper(chosen!.helper!, { ports: net.ports, socket: state.rootFile(slirpSocketName(id)), mapGateway: net.mapGateway })]
            : undefined,
    });
    if (process.env.BUNKER_PLAN) say(plan.describe());
    if (!detach) return await execStage(plan, state.root);
    const started = await detachStage(plan, state.root);
    if (!started.ok) throw new BunkerError(started.message, started.code);
    return id;
  } catch (e) {
    // an rm while it was not running yet took its state (its stage, or a file written for it, failed on what is gone);
    // a foreground stage removes the state itself when it fails
    const removed = flags.detach && !flags.rm && !sys.stat(state.dir, false);
    if (!again) {
      state.remove();
      await img?.discard(opts.name);
    }
    removeCgroup(cgroup);
    if (removed) throw new BunkerError(`container ${opts.name ?? id.slice(0, 12)} was removed (by 'bunker rm') while it started`);
    throw e;
  }
}

const ADJECTIVES = "brave calm clever eager fancy gentle happy jolly keen lucid merry nifty proud quirky rapid serene sharp sleepy snappy stoic sunny swift tender vivid wise witty zealous bold cosy dapper".split(" ");
const NOUNS = "albatross badger beaver bison crane dingo falcon ferret gecko heron ibex jackal koala lemur lynx marmot newt ocelot otter panda puffin quokka raven salmon tapir urchin walrus wombat yak zebra".split(" ");

/** A readable name no container holds, as Docker makes them: adjective_animal. */
function generateName(root: string): string {
  const pick = (a: string[]) => a[Math.floor(Math.random() * a.length)]!;
  for (let i = 0; ; i++) {
    const name = `${pick(ADJECTIVES)}_${pick(NOUNS)}${i >= 10 ? `_${i}` : ""}`;
    if (!sys.tryReadlink(`${root}/names/${name}`) && !Store.nameOwner(name)) return name;
  }
}

/**
 * A file of the image as its overlay shows it: from the topmost layer that
 * has it, unless a layer above deletes it (a whiteout: a 0:0 character
 * device, at the file or at a directory on its way) or hides what lies
 * below (an opaque directory on its way).
 */
export function readLayered(top: string[], path: string): string | undefined {
  const parts = path.split("/").filter(Boolean);
  for (const l of top) {
    let hides = false;
    for (let i = 1; i <= parts.length; i++) {
      const at = `${l}/${parts.slice(0, i).join("/")}`;
      const st = sys.stat(at, false);
      if (st === undefined) break;
      if (st.kind === "other") return undefined; // a whiteout
      if (st.kind !== "dir") break;
      if (i < parts.length && sys.getxattr(at, "user.overlay.opaque") === "y") hides = true;
    }
    const text = sys.readInRoot(l, path);
    if (text !== undefined || hides) return text;
  }
  return undefined;
}

/** fn(), or undo() and rethrow. */
function claim<T>(fn: () => T, undo: () => void): T {
  try {
    return fn();
  } catch (e) {
    undo();
    throw e;
  }
}

/** -p, --dns and --add-host, checked against the mode. */
function networkSetup(mode: NetworkMode, flags: RunFlags) {
  const ports = (flags.publish ?? []).map(parsePublish);
  const helped = mode === "pasta" || mode === "slirp4netns";
  if (ports.length && !helped) throw new BunkerError(`-p needs a user-mode network (--network pasta or slirp4netns), not ${mode}`);
  let mapGateway = false;
  const hosts = (flags.addHost ?? []).map(parseAddHost).map((h) => {
    if (h.ip !== "host-gateway") return h;
    if (!helped) throw new BunkerError(`--add-host ${h.name}:host-gateway needs --network pasta or slirp4netns, not ${mode}`);
    const ip = mode === "pasta" ? hostGateway() : SLIRP.gateway;
    if (!ip) throw new BunkerError(`--add-host ${h.name}:host-gateway: this host has no IPv4 default route for pasta to map`);
    mapGateway = true;
    return { name: h.name, ip };
  });
  return { ports, hosts, mapGateway, dns: (flags.dns ?? []).map(checkDns) };
}

/** A name held by a stopped container of the store is taken too, as in Docker. */
function refuseStoredName(name: string, id: string): void {
  const owner = Store.nameOwner(name);
  if (owner && owner !== id && sys.stat(`${Store.dataRoot()}/containers/${owner}/container.json`)) throw Store.nameInUse(name, owner);
}

/** An image from the store, and the container it gets: its own upper layer
 * and work directory, and a mount point for the overlay. */
function openImage(store: Store, record: ImageRecord, id: string, flags: RunFlags, again: boolean) {
  const maps = store.maps();
  if (flags.userns === "single" && store.ranges) {
    throw new BunkerError("this store's images were unpacked with subordinate id ranges: --userns=single cannot run them");
  }
  const missing = record.layers.find((d) => !store.hasLayer(d));
  if (missing) throw store.damaged(`layer ${missing} of image ${record.names[0] ?? record.id} is missing`);
  const top = store.diffDirs(record); // overlayfs and lookups go top first
  const dir = store.containerDir(id);
  // started again: as it was made; new: an overlay where the kernel has one for us, else fuse-overlayfs's, else a copy
  const storage = again ? undefined : storageMode();
  const kind = storage?.mode ?? store.findContainer(id)?.storage ?? "overlay";
  const copy = kind === "copy";
  const fuse = storage?.mode === "fuse-overlayfs" ? storage.tool : kind === "fuse-overlayfs" ? findHelper("fuse-overlayfs") : undefined;
  if (kind === "fuse-overlayfs" && !fuse) throw new BunkerError(`container ${id.slice(0, 12)} was made on fuse-overlayfs, which is not installed any more: install the fuse-overlayfs package`);
  return {
    rootfs: `${dir}/rootfs`,
    dir,
    files: store.containerFiles(id),
    maps,
    record,
    overlay: copy ? undefined : { lower: top, upper: `${dir}/upper`, work: `${dir}/work`, fuse },
    /** A copy of the image for a new container, where overlayfs cannot be had. */
    prepare: async () => {
      if (!copy || again) return;
      log().info(`${storage?.mode === "copy" ? storage.why : ""}: container ${id.slice(0, 12)} gets its own copy of the image (${(record.size / 1e6).toFixed(1)} MB) instead of an overlay`);
      await store.copyLayers(id, record);
    },
    readRoot: (path: string) => readLayered(top, path),
    claimName: (name: string) => store.claimName(name, id),
    releaseName: (name: string) => store.releaseName(name, id),
    nameLink: (name: string) => store.nameLink(name),
    record_: (spec: Spec, name: string | undefined, run: StartedAs) => again || store.createContainer(id, { image: record, name, spec, storage: kind === "overlay" ? undefined : kind, run }),
    dropRecord: () => again || store.dropContainer(id),
    discard: async (name?: string) => {
      if (name) store.releaseName(name, id);
      await store.remove([dir]).catch(() => {});
    },
  };
}

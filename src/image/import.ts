// bunker import FILE|DIR: a root filesystem tar (docker/podman export), a
// docker-archive (docker/podman save), or an OCI image layout (a directory
// or its tar), plain, gzip or zstd; told apart by content, not by name.
// Everything is checked before it becomes visible: layers are unpacked into
// a staging directory, their digests compared, then renamed into place.
import { BunkerError } from "../errors.ts";
import { log } from "../log.ts";
import * as sys from "../linux/sys.ts";
import { ByteReader, collect, TooLargeError, TruncatedError } from "./bytes.ts";
import { decompress, sniff } from "./decompress.ts";
import { ARCHIVE_NAME, type ImageConfig, type ImageRecord, isObject, isStrings, type LayerInfo, malformedConfig, normalizeName, Store } from "./store.ts";
import { type Entries, readTar, type TarEntry, TarError } from "./tar.ts";
import { ArchiveError, unpack } from "./unpack.ts";
import { findHelper, identity, unpackerHashes } from "../runtime/host.ts";
import { importBundle } from "../bundle/import.ts";
import { DIGESTS, MANIFEST } from "../bundle/format.ts";
import { Progress } from "../bundle/progress.ts";
import type { Spec } from "../spec/types.ts";

/** Limits for one archive: generous, but a bomb stops somewhere. */
const MAX_ENTRIES = 2_000_000;
const MAX_BYTES = 256 * 2 ** 30;
/** Descriptors an OCI layout's indexes may list in all: a few per platform, not millions. */
const MAX_DESCRIPTORS = 10_000;

/** Bytes of a file (or part of one), in chunks valid until three more are read (sys.readChunks). */
async function* fileStream(path: string, start = 0, end?: number): AsyncGenerator<Uint8Array> {
  yield* sys.readChunks(sys.openRead(path), { start, end });
}

async function head(source: AsyncIterable<Uint8Array>, n: number): Promise<Uint8Array> {
  for await (const chunk of source) return chunk.slice(0, n); // the source's buffer goes back to be reused
  return new Uint8Array(0);
}

/** Pass a stream through while hashing it. */
async function* hashing(source: AsyncIterable<Uint8Array>, hasher: Bun.CryptoHasher): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    hasher.update(chunk);
    yield chunk;
  }
}

const digestOf = (h: Bun.CryptoHasher) => `sha256:${h.digest("hex")}`;

/**
 * Unpack tar entries into a staging directory, let check() compare digests
 * once every entry has been read, then rename the layer into place: nothing
 * is visible before it is verified, and a failure leaves nothing behind.
 */
async function stageLayer(
  store: Store,
  entries: Entries,
  /** layer: .wh. names are whiteouts; digests: entries ask for their files' sha256 (a bundle's), which the stage may take on. */
  how: { layer: boolean; digests?: boolean },
  check: () => Promise<string>,
): Promise<LayerInfo> {
  const staging = store.staging();
  try {
    const diff = `${staging.dir}/layer/diff`;
    sys.mkdir(`${staging.dir}/layer`, 0o700);
    sys.mkdir(diff, 0o755);
    const who = identity();
    const result = await unpack(
      diff,
      entries,
      { ...store.maps(), layer: how.layer, maxEntries: MAX_ENTRIES, maxBytes: MAX_BYTES, hash: how.digests && unpackerHashes() },
      { uid: who.uid, gid: who.gid, helper: findHelper },
    );
    const diffId = await check();
    const info: LayerInfo = {
      diffId,
      entries: result.entries,
      bytes: result.bytes,
      altered: Object.fromEntries([...result.altered].map(([p, a]) => [p, [a.uid, a.gid, a.mode]])),
      devices: result.devices,
      ...(result.xattrsSkipped ? { xattrsSkipped: result.xattrsSkipped } : {}),
    };
    sys.writeAtomic(`${staging.dir}/layer/layer.json`, JSON.stringify(info));
    if (store.holdLayer(diffId)) return store.layerInfo(diffId); // imported meanwhile by someone else
    try {
      sys.rename(`${staging.dir}/layer`, store.layerDir(diffId));
    } catch (e) {
      // another import put the same layer in place between the check and here: use its copy (this one goes with the staging directory)
      if (e instanceof sys.SysError && (e.code === "ENOTEMPTY" || e.code === "EEXIST") && store.hasLayer(diffId)) return store.layerInfo(diffId);
      throw e;
    }
    store.created.push(diffId); // removed again if the import as a whole is refused
    return info;
  } finally {
    await store.discard(staging);
  }
}

/** One layer's tar stream (compressed or not), checked against the digests expected of it. */
async function importLayer(
  store: Store,
  source: AsyncIterable<Uint8Array>,
  want: { diffId?: string; digest?: string; size?: number },
  asLayer: boolean,
): Promise<LayerInfo> {
  const present = want.diffId !== undefined && store.holdLayer(want.diffId);
  const raw = new Bun.CryptoHasher("sha256");
  const tarHash = new Bun.CryptoHasher("sha256");
  const blob = new ByteReader(hashing(source, raw));
  const first = await blob.readExact(6).catch((e) => {
    throw e instanceof TruncatedError ? new ArchiveError("a layer is shorter than 6 bytes: not an archive") : e;
  });
  if (!first) throw new ArchiveError("a layer is empty: not an archive");
  const how = sniff(first);
  if (how === "xz" || how === "bzip2") throw new ArchiveError(`${how}-compressed layers are not supported: recompress with gzip or zstd`);
  const whole = async function* () {
    yield first;
    yield* blob.rest();
  };
  const tar = new ByteReader(hashing(decompress(whole(), how), tarHash));
  const check = async () => {
    // the digests cover the whole blob, past the tar's end-of-archive blocks
    for await (const _ of tar.rest()) void _;
    // each once: a CryptoHasher starts over after digest()
    const diffId = digestOf(tarHash);
    const digest = digestOf(raw);
    if (want.digest && digest !== want.digest) {
      throw new ArchiveError(`a layer's digest is ${digest}, not ${want.digest} as its manifest says: the archive is corrupt`);
    }
    // a digest that matches with a size that does not: the descriptor lies about the size
    if (want.size !== undefined && blob.position !== want.size) {
      throw new ArchiveError(`a layer is ${blob.position} bytes, not ${want.size} as its manifest says: the archive is corrupt`);
    }
    if (want.diffId && diffId !== want.diffId) {
      throw new ArchiveError(`a layer's content digest is ${diffId}, not ${want.diffId} as the image config says: the archive is corrupt`);
    }
    return diffId;
  };
  // a layer the store has already is not unpacked again, but its blob is checked all the same, as docker load does
  if (present) {
    await check();
    return store.layerInfo(want.diffId!);
  }
  return stageLayer(store, readTar(tar), { layer: asLayer }, check);
}

interface Member {
  offset: number;
  size: number;
}

const TOP_FILES = new Set(["manifest.json", "index.json", "oci-layout", "repositories"]);

/** The members of an uncompressed tar file, by clean path, and the small JSON ones read. */
async function indexTar(path: string): Promise<{ members: Map<string, Member>; json: Map<string, Uint8Array> }> {
  const members = new Map<string, Member>();
  const json = new Map<string, Uint8Array>();
  /** Links among the members, to the member each names: docker save writes a layer it has already as a symlink to it. */
  const links = new Map<string, string>();
  const reader = new ByteReader(fileStream(path));
  for await (const e of readTar(reader)) {
    const name = e.header.path.replace(/^(\.\/)+/, "").replace(/^\/+/, "");
    if (e.header.type === "symlink" || e.header.type === "hardlink") {
      const target = e.header.type === "hardlink" ? e.header.linkname.replace(/^(\.\/)+/, "") : memberPath(name, e.header.linkname);
      if (target !== undefined) links.set(name, target);
    }
    if (e.header.type !== "file") continue;
    members.set(name, { offset: reader.position, size: e.header.size });
    // only the layout's own small files are kept: blobs and configs are read from the file when asked for,
    // so that memory does not grow with the number of members
    if (TOP_FILES.has(name)) {
      if (e.header.size > 4 << 20) throw new ArchiveError(`${name} is too large (${e.header.size} bytes)`);
      json.set(name, await collect(e.data()));
    }
  }
  // a link is the bytes of the member it leads to (through at most 8 links): no file is ever opened by its name
  for (const [name, target] of links) {
    let at: string | undefined = target;
    for (let hops = 0; at !== undefined && !members.has(at) && hops < 8; hops++) at = links.get(at);
    const m = at === undefined ? undefined : members.get(at);
    if (m && !members.has(name)) members.set(name, m);
  }
  return { members, json };
}

/** The member a symlink's target names, from the symlink's own directory; undefined if absolute or out of the archive. */
function memberPath(link: string, target: string): string | undefined {
  if (target.startsWith("/")) return undefined;
  const parts = link.split("/").slice(0, -1);
  for (const p of target.split("/")) {
    if (p === "" || p === ".") continue;
    if (p !== "..") parts.push(p);
    else if (parts.pop() === undefined) return undefined;
  }
  return parts.join("/");
}

function parseJson<T>(bytes: Uint8Array | undefined, what: string): T {
  if (!bytes) throw new ArchiveError(`${what} is missing`);
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as T;
  } catch {
    throw new ArchiveError(`${what} is not valid JSON`);
  }
}

/** A JSON object, or one line saying what it is not. */
function parseObject<T>(bytes: Uint8Array | undefined, what: string): T {
  const v = parseJson<unknown>(bytes, what);
  if (!isObject(v)) throw new ArchiveError(`${what} is not a JSON object`);
  return v as T;
}

/** --name names one image: an archive of several is refused (one would get the name, the others none). */
function oneImageNamed(images: number, name: string | undefined): void {
  if (name !== undefined && images > 1) throw new ArchiveError(`it holds ${images} images, and --name names one: import it without --name to keep the names it gives them`);
}

/** A name an archive gives its image: a reference, not just any text (what the image's names may hold, as --name). */
function archiveName(v: unknown, where: string): string {
  if (typeof v !== "string" || !ARCHIVE_NAME.test(v)) throw new ArchiveError(`${where} names the image ${JSON.stringify(v).slice(0, 80)}, which is not an image reference`);
  return v;
}

const sha256 = (b: Uint8Array) => `sha256:${new Bun.CryptoHasher("sha256").update(b).digest("hex")}`;

function checkConfig(config: ImageConfig, what: string): string[] {
  const wrong = malformedConfig(config);
  if (wrong) throw new ArchiveError(`${what} ${wrong}`);
  const ids = config.rootfs?.diff_ids;
  if (!Array.isArray(ids) || ids.some((d) => typeof d !== "string" || !/^sha256:[0-9a-f]{64}$/.test(d))) {
    throw new ArchiveError(`${what} has no valid rootfs.diff_ids`);
  }
  // Docker loads one, and fails to run it: refused here instead, where the archive is named
  if (ids.length === 0) throw new ArchiveError(`${what} lists no layers: the image has no file system to run`);
  return ids;
}

/** How an image's files got onto this disk, said once: owners the id map cannot hold. */
function noteOwners(store: Store, infos: LayerInfo[]): void {
  const altered = infos.reduce((n, i) => n + Object.keys(i.altered).length, 0);
  const devices = infos.reduce((n, i) => n + i.devices.length, 0);
  const count = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
  if (altered) {
    log().info(
      store.ranges
        ? `${count(altered, "file has an owner", "files have owners")} outside your subordinate id range: they belong to root in the container; their owners are kept in the store for export`
        : `${count(altered, "file belongs", "files belong")} to other users than root, which a one-id map cannot hold: they belong to root in the container; their owners are kept in the store for export (configure /etc/subuid for exact owners)`,
    );
  }
  if (devices) log().info(`${count(devices, "device node", "device nodes")} left out: a rootless container cannot create them (the runtime provides /dev)`);
  const xattrs = infos.reduce((n, i) => n + (i.xattrsSkipped ?? 0), 0);
  if (xattrs) log().info(`${count(xattrs, "extended attribute", "extended attributes")} left out: a rootless store keeps user.* ones, and file capabilities of owners it holds`);
}

export interface ImportResult {
  image: ImageRecord;
}

function register(store: Store, config: ImageConfig, configBytes: Uint8Array, names: string[], infos: LayerInfo[], source: string, runtime?: Spec): ImageRecord {
  const record: ImageRecord = {
    runtime,
    id: sha256(configBytes),
    names: names.map(normalizeName),
    layers: infos.map((i) => i.diffId),
    config,
    created: new Date().toISOString(),
    size: infos.reduce((n, i) => n + i.bytes, 0),
    source,
  };
  store.update((index) => {
    // a layer this import found in place may have been removed since, by an rmi of the last image using it
    const gone = record.layers.find((d) => !store.hasLayer(d));
    if (gone) throw new BunkerError(`layer ${gone} was removed (by 'bunker rmi', or another import that failed) while this import ran: import it again`);
    // a name moves to the newest image that claims it, as docker load does
    for (const other of index.images) other.names = other.names.filter((n) => !record.names.includes(n));
    const existing = index.images.find((i) => i.id === record.id);
    if (existing) existing.names = [...new Set([...existing.names, ...record.names])];
    else index.images.push(record);
  });
  // the names just given first: they are what the caller asked for
  const stored = store.find(record.id) ?? record;
  return { ...stored, names: [...new Set([...record.names, ...stored.names])] };
}

/** A root filesystem tar: one layer, an empty config (as `docker import` makes). */
async function importRootfs(store: Store, source: AsyncIterable<Uint8Array>, name: string | undefined, what: string): Promise<ImageRecord> {
  const info = await importLayer(store, source, {}, false);
  const config: ImageConfig = {
    architecture: "amd64",
    os: "linux",
    created: new Date().toISOString(),
    config: {},
    rootfs: { type: "layers", diff_ids: [info.diffId] },
  };
  noteOwners(store, [info]);
  return register(store, config, new TextEncoder().encode(JSON.stringify(config)), name ? [name] : [], [info], what);
}

interface DockerManifest {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/** docker save / podman save: manifest.json, a config per image, a tar per layer. */
async function importDockerArchive(store: Store, file: string, idx: Awaited<ReturnType<typeof indexTar>>, name: string | undefined, what: string): Promise<ImageRecord[]> {
  const manifests = parseJson<DockerManifest[]>(idx.json.get("manifest.json"), "manifest.json");
  if (!Array.isArray(manifests) || manifests.length === 0) {
    // one name in two kinds of archive: bunker has one import where Docker has load and import
    throw new ArchiveError("manifest.json lists no images (a root filesystem tar that begins with a manifest.json of its own is taken for a docker archive: pack it with another entry first)");
  }
  const configs = new Set(manifests.map((m) => (isObject(m) ? m.Config : undefined)));
  oneImageNamed(configs.size, name);
  const out: (() => ImageRecord)[] = []; // registered once every image has been verified
  for (const m of manifests) {
    if (!isObject(m) || typeof m.Config !== "string" || !isStrings(m.Layers)) throw new ArchiveError("manifest.json: an entry has no Config or Layers");
    if (m.RepoTags !== undefined && m.RepoTags !== null && !Array.isArray(m.RepoTags)) throw new ArchiveError("manifest.json: an entry's RepoTags is not a list");
    const tags = (m.RepoTags ?? []).map((t) => archiveName(t, "manifest.json"));
    const configBytes = idx.json.get(m.Config.replace(/^\.\//, "")) ?? (await memberBytes(file, idx, m.Config));
    const config = parseJson<ImageConfig>(configBytes, m.Config);
    const expectId = /([0-9a-f]{64})(\.json)?$/.exec(m.Config)?.[1];
    if (expectId && sha256(configBytes) !== `sha256:${expectId}`) throw new ArchiveError(`${m.Config} does not match its digest: the archive is corrupt`);
    const diffIds = checkConfig(config, m.Config);
    if (diffIds.length !== m.Layers.length) throw new ArchiveError(`${m.Config} names ${diffIds.length} layers but the manifest ${m.Layers.length}`);
    const infos: LayerInfo[] = [];
    for (const [i, layer] of m.Layers.entries()) {
      const member = idx.members.get(layer.replace(/^\.\//, ""));
      if (!member) throw new ArchiveError(`layer ${layer} is missing from the archive`);
      infos.push(await importLayer(store, fileStream(file, member.offset, member.offset + member.size), { diffId: diffIds[i] }, true));
    }
    noteOwners(store, infos);
    out.push(() => register(store, config, configBytes, name ? [name] : tags, infos, what));
  }
  return out.map((r) => r());
}

async function memberBytes(file: string, idx: Awaited<ReturnType<typeof indexTar>>, path: string): Promise<Uint8Array> {
  const m = idx.members.get(path.replace(/^\.\//, ""));
  if (!m) throw new ArchiveError(`${path} is missing from the archive`);
  if (m.size > 16 << 20) throw new ArchiveError(`${path} is too large for a manifest or config`);
  return collect(fileStream(file, m.offset, m.offset + m.size));
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os?: unknown; architecture?: unknown; variant?: unknown };
}

/** This host's platform, as an image index names it (GOOS/GOARCH). */
const HOST_PLATFORM = `linux/${({ x64: "amd64", ia32: "386", ppc64: "ppc64le" } as Record<string, string>)[process.arch] ?? process.arch}`;

/**
 * The x86-64 micro-architecture level (1 to 4) a CPU with these flags (as
 * /proc/cpuinfo lists them) runs: the psABI's x86-64-v2, -v3 and -v4, which
 * image indexes name as amd64's variants v2, v3 and v4.
 */
export function amd64Level(flags: string): number {
  const has = new Set(flags.split(/\s+/));
  const all = (names: string) => names.split(" ").every((f) => has.has(f));
  if (!all("cx16 popcnt sse4_1 sse4_2 ssse3 lahf_lm")) return 1;
  if (!all("avx avx2 bmi1 bmi2 f16c fma abm movbe xsave")) return 2;
  if (!all("avx512f avx512bw avx512cd avx512dq avx512vl")) return 3;
  return 4;
}

let hostLevel: number | undefined;

/**
 * How well a platform of this host's architecture suits it: 0 where its
 * CPU cannot run it (an amd64 variant above its level), else higher for a
 * later variant (no variant is amd64's v1); variants of other
 * architectures rank alike, and the first listed wins.
 */
function variantRank(platform: string): number {
  const variant = platform.slice(HOST_PLATFORM.length + 1);
  if (HOST_PLATFORM !== "linux/amd64" || variant === "") return 1;
  const level = /^v([1-9])$/.exec(variant)?.[1];
  if (!level) return 0; // not a variant amd64 has
  hostLevel ??= amd64Level(/^flags\s*:(.*)$/m.exec(sys.tryRead("/proc/cpuinfo") ?? "")?.[1] ?? "");
  return Number(level) <= hostLevel ? Number(level) : 0;
}

/** A descriptor's platform (os/architecture[/variant]), if it names one. */
function platformOf(d: Descriptor): string | undefined {
  const p = d.platform;
  if (!isObject(p)) return undefined;
  return [p.os, p.architecture, p.variant].filter((v) => typeof v === "string" && v !== "").join("/") || undefined;
}

const MANIFEST_TYPES = ["application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"];
const INDEX_TYPES = ["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"];
const CONFIG_TYPES = ["application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"];
const LAYER_TYPES = new Set([
  "application/vnd.oci.image.layer.v1.tar",
  "application/vnd.oci.image.layer.v1.tar+gzip",
  "application/vnd.oci.image.layer.v1.tar+zstd",
  "application/vnd.docker.image.rootfs.diff.tar.gzip",
  "application/vnd.docker.image.rootfs.diff.tar",
]);

/** Blobs of an OCI layout, from a directory or from an indexed tar. */
interface BlobSource {
  read(digest: string, max: number): Promise<Uint8Array>;
  stream(digest: string): AsyncIterable<Uint8Array>;
  file(name: string): Promise<Uint8Array | undefined>;
}

function blobPath(digest: string): string {
  if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new ArchiveError(`unsupported or malformed digest "${digest}"`);
  return `blobs/sha256/${digest.slice(7)}`;
}

/** A descriptor as the spec has it: mediaType, digest (sha256:HEX) and size; else one line. */
function descriptor(v: unknown, where: string): Descriptor {
  if (!isObject(v) || typeof v.mediaType !== "string" || typeof v.digest !== "string" || !Number.isSafeInteger(v.size) || (v.size as number) < 0) {
    throw new ArchiveError(`${where}: a descriptor without a mediaType, digest and size`);
  }
  if (v.annotations !== undefined && (!isObject(v.annotations) || !Object.values(v.annotations).every((a) => typeof a === "string"))) {
    throw new ArchiveError(`${where}: a descriptor's annotations are not strings`);
  }
  blobPath(v.digest);
  return v as unknown as Descriptor;
}

function descriptors(v: unknown, where: string): Descriptor[] {
  if (!Array.isArray(v)) throw new ArchiveError(`${where} lists no descriptors`);
  return v.map((d) => descriptor(d, where));
}

async function verified(src: BlobSource, d: Descriptor, max: number): Promise<Uint8Array> {
  if (d.size > max) throw new ArchiveError(`blob ${d.digest} is too large for a manifest or config (${d.size} bytes)`);
  const bytes = await src.read(d.digest, d.size);
  if (bytes.length !== d.size || sha256(bytes) !== d.digest) throw new ArchiveError(`blob ${d.digest} does not match its digest and size: the layout is corrupt`);
  return bytes;
}

/** A verified manifest or index whose own mediaType, when it says one, is the one its descriptor gave. */
async function verifiedObject<T>(src: BlobSource, d: Descriptor, max: number): Promise<T> {
  const v = parseObject<Record<string, unknown>>(await verified(src, d, max), d.digest);
  if (v.mediaType !== undefined && v.mediaType !== d.mediaType) throw new ArchiveError(`${d.digest} says it is "${String(v.mediaType).slice(0, 80)}", not "${d.mediaType}" as its descriptor does`);
  return v as T;
}

/** An OCI image layout: oci-layout, index.json, blobs/sha256/. */
async function importOciLayout(store: Store, src: BlobSource, name: string | undefined, what: string): Promise<ImageRecord[]> {
  const layout = parseObject<{ imageLayoutVersion?: string }>(await src.file("oci-layout"), "oci-layout");
  if (typeof layout.imageLayoutVersion !== "string") throw new ArchiveError("oci-layout has no imageLayoutVersion");
  const index = parseObject<{ manifests?: unknown }>(await src.file("index.json"), "index.json");
  // each manifest once (with the names it is given), each nested index read once, and so many descriptors in all
  const found = new Map<string, { d: Descriptor; refs: Set<string> }>();
  const walked = new Set<string>();
  /** What was passed over: other platforms' images (and attestations, whose platform is unknown/unknown), and unknown media types. */
  const platforms = new Set<string>();
  const unknown = new Set<string>();
  let listed = 0;
  const walk = async (list: unknown, where: string, depth: number, ref?: string) => {
    const ds = descriptors(list, where);
    if ((listed += ds.length) > MAX_DESCRIPTORS) throw new ArchiveError(`the layout's indexes list more than ${MAX_DESCRIPTORS} descriptors`);
    const refOf = (d: Descriptor) => d.annotations?.["io.containerd.image.name"] ?? d.annotations?.["org.opencontainers.image.ref.name"] ?? ref;
    // of a multi-platform image, this host's only, as docker load and podman load take it; of several
    // variants of it (amd64's v2, v3, v4), the latest this CPU runs: one per name (siblings unnamed share one)
    const best = new Map<string | undefined, { d: Descriptor; rank: number }>();
    const rank = (d: Descriptor) => {
      const platform = platformOf(d);
      if (platform === undefined) return 1;
      return platform === HOST_PLATFORM || platform.startsWith(`${HOST_PLATFORM}/`) ? variantRank(platform) : 0;
    };
    for (const d of ds) {
      if (!MANIFEST_TYPES.includes(d.mediaType) || platformOf(d) === undefined) continue;
      const r = rank(d);
      const was = best.get(refOf(d));
      if (r > 0 && (!was || r > was.rank)) best.set(refOf(d), { d, rank: r });
    }
    for (const d of ds) {
      const r = refOf(d);
      const platform = platformOf(d);
      if (platform !== undefined && (rank(d) === 0 || (MANIFEST_TYPES.includes(d.mediaType) && best.get(r)?.d !== d))) {
        platforms.add(platform);
        continue;
      }
      if (MANIFEST_TYPES.includes(d.mediaType)) {
        const f = found.get(d.digest) ?? { d, refs: new Set<string>() };
        found.set(d.digest, f);
        // a ref that is only a tag ("latest") names nothing by itself
        if (r !== undefined && /[:/]/.test(r)) f.refs.add(archiveName(r, where));
      } else if (INDEX_TYPES.includes(d.mediaType)) {
        if (depth >= 4) throw new ArchiveError(`indexes nest deeper than 4 in ${where}`);
        if (walked.has(d.digest)) continue;
        walked.add(d.digest);
        await walk((await verifiedObject<{ manifests?: unknown }>(src, d, 4 << 20)).manifests, `index ${d.digest}`, depth + 1, r);
      } else unknown.add(d.mediaType.slice(0, 100)); // the image spec: an unknown media type is ignored
    }
  };
  await walk(index.manifests, "index.json", 0);
  if (found.size === 0) {
    const others = [...platforms].filter((p) => !p.startsWith("unknown"));
    if (others.length) throw new ArchiveError(`it holds no image for this host's platform, ${HOST_PLATFORM}: only for ${others.join(", ")}`);
    throw new ArchiveError(`index.json lists no image manifests${unknown.size ? ` (only ${[...unknown].map((t) => `"${t}"`).join(", ")})` : ""}`);
  }
  oneImageNamed(found.size, name);
  const out: (() => ImageRecord)[] = []; // registered once every image has been verified
  for (const { d, refs } of found.values()) {
    const manifest = await verifiedObject<{ config?: unknown; layers?: unknown }>(src, d, 4 << 20);
    if (!manifest.config || !Array.isArray(manifest.layers)) throw new ArchiveError(`manifest ${d.digest} has no config or layers`);
    const cd = descriptor(manifest.config, `manifest ${d.digest}`);
    const layers = descriptors(manifest.layers, `manifest ${d.digest}`);
    if (!CONFIG_TYPES.includes(cd.mediaType)) throw new ArchiveError(`unknown config media type "${cd.mediaType.slice(0, 100)}"`);
    const configBytes = await verified(src, cd, 16 << 20);
    const config = parseJson<ImageConfig>(configBytes, cd.digest);
    const diffIds = checkConfig(config, `config ${cd.digest}`);
    if (diffIds.length !== layers.length) throw new ArchiveError(`manifest ${d.digest} and its config disagree on the number of layers`);
    for (const l of layers) if (!LAYER_TYPES.has(l.mediaType)) throw new ArchiveError(`unknown layer media type "${l.mediaType.slice(0, 100)}"`);
    const infos: LayerInfo[] = [];
    // each layer held, and its blob checked, whether the store has it or not (importLayer)
    for (const [i, l] of layers.entries()) infos.push(await importLayer(store, src.stream(l.digest), { diffId: diffIds[i], digest: l.digest, size: l.size }, true));
    noteOwners(store, infos);
    out.push(() => register(store, config, configBytes, name ? [name] : [...refs], infos, what));
  }
  return out.map((r) => r());
}

function dirBlobs(dir: string): BlobSource {
  /** A regular file beneath dir (no symlink or ".." out of it, no FIFO or device), or undefined when missing. */
  const open = (name: string, what: string): { fd: number; size: number } | undefined => {
    let r: { fd: number; st: sys.Stat };
    try {
      r = sys.openBeneath(dir, name);
    } catch (e) {
      if (e instanceof sys.SysError && e.code === "ENOENT") return undefined;
      if (e instanceof sys.SysError && (e.code === "EXDEV" || e.code === "ELOOP")) throw new ArchiveError(`${what} leads out of ${dir} (a symbolic link): refused`);
      throw e;
    }
    if (r.st.kind !== "file") {
      sys.close(r.fd);
      throw new ArchiveError(`${what} is not a regular file`);
    }
    return { fd: r.fd, size: r.st.size };
  };
  const must = (name: string, what: string) => {
    const f = open(name, what);
    if (!f) throw new ArchiveError(`${what} is missing from ${dir}`);
    return f;
  };
  /** All of a file opened, at most max bytes (else `tooLarge` says why). */
  const whole = (f: { fd: number; size: number }, max: number, tooLarge: string) => {
    if (f.size > max) {
      sys.close(f.fd);
      throw new ArchiveError(tooLarge);
    }
    return collect(sys.readChunks(f.fd), max);
  };
  return {
    read: async (digest, max) => {
      const f = must(blobPath(digest), `blob ${digest}`);
      return whole(f, max, `blob ${digest} is ${f.size} bytes, not ${max} as its descriptor says`);
    },
    // opened when first read: a stream never read leaves no descriptor open
    stream: async function* (digest) {
      yield* sys.readChunks(must(blobPath(digest), `blob ${digest}`).fd);
    },
    file: async (name) => {
      const f = open(name, name);
      return f && whole(f, 4 << 20, `${name} is too large (${f.size} bytes)`);
    },
  };
}

function tarBlobs(file: string, idx: Awaited<ReturnType<typeof indexTar>>): BlobSource {
  return {
    read: async (digest, max) => {
      const name = blobPath(digest);
      const m = idx.members.get(name);
      if (!m) throw new ArchiveError(`blob ${digest} is missing from the archive`);
      if (m.size > max) throw new ArchiveError(`blob ${digest} is too large for a manifest or config`);
      return idx.json.get(name) ?? collect(fileStream(file, m.offset, m.offset + m.size));
    },
    stream: (digest) => {
      const m = idx.members.get(blobPath(digest));
      if (!m) throw new ArchiveError(`blob ${digest} is missing from the archive`);
      return fileStream(file, m.offset, m.offset + m.size);
    },
    file: async (name) => idx.json.get(name),
  };
}

/** The first entry's name tells a bundle, an image archive and a root filesystem apart. */
function archiveKind(first: string | undefined): "bundle" | "image" | "rootfs" {
  const name = (first ?? "").replace(/^(\.\/)+/, "");
  if (name === MANIFEST) return "bundle";
  // docker save's, podman's, and go-containerregistry's (its config, sha256:HEX, comes first; manifest.json last);
  // and a hand-made docker archive's other names (config.json, layer.tar, NAME/layer.tar), or a bundle's
  // files out of its order: one that has no manifest.json, oci-layout or bunker.json is then read as the
  // root filesystem it is
  return /^(manifest\.json|repositories|oci-layout|index\.json|blobs\/?|[0-9a-f]{64}(\/|\.json)?|sha256:[0-9a-f]{64}$|[^/]+\.(json|tar)$|[^/]+\/(layer\.tar|json|VERSION)$|bunker\.sha256$|rootfs(\/|$))/.test(name)
    ? "image"
    : "rootfs";
}

/** Bytes passing by, counted on a progress bar. */
async function* counted(source: AsyncIterable<Uint8Array>, progress?: Pick<Progress, "advance">): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    progress?.advance(chunk.length);
    yield chunk;
  }
}

/** The standard input, as `import -` names it. */
const STDIN = "the standard input";

/** Import a file or directory, or ("-") the standard input; `digest`: a bundle's expected digest (a bundle's own digests show corruption, this one a substitute). */
export async function importPath(input: string, name?: string, showProgress = true, digest?: string): Promise<ImageRecord[]> {
  if (input !== "-") {
    if (sys.stat(input)?.kind !== "fifo") return importFile(input, input, name, showProgress, digest);
    // a pipe named as a file (bash's <(...), /dev/stdin, a FIFO): kept first, as the standard input is
    return importSpooled(() => sys.openRead(input), input, name, showProgress, digest);
  }
  // as docker load and docker import read it: a file as it is, a pipe spooled into the store first (an import reads its input more than once)
  if (sys.isatty(0)) throw new BunkerError("refusing to read an archive from a terminal: name a FILE, or redirect the input");
  // a file opened again (its own offsets), where its reading starts at its start; else what is left of it, kept
  const own = "/proc/self/fd/0";
  if (sys.stat(own)?.kind === "file" && sys.offset(0) === 0 && readable(own)) return importFile(own, STDIN, name, showProgress, digest);
  return importSpooled(() => 0, STDIN, name, showProgress, digest);
}

/** Import what open() gives to read to its end (a descriptor reading closes), kept in the store's tmp/ first. */
async function importSpooled(open: () => number, input: string, name?: string, showProgress = true, digest?: string): Promise<ImageRecord[]> {
  const store = await Store.open();
  const spool = store.staging();
  const file = `${spool.dir}/stdin`;
  try {
    const fd = sys.openWrite(file, 0o600);
    try {
      let n = 0;
      for await (const chunk of sys.readChunks(open())) {
        if ((n += chunk.length) > MAX_BYTES) throw new BunkerError(`${input} is more than ${MAX_BYTES} bytes`);
        sys.writeAll(fd, chunk, `write ${file}`);
      }
    } catch (e) {
      if (e instanceof sys.SysError) throw new BunkerError(`cannot keep ${input} in the store to import it: ${e.reason}${e.hint}`);
      throw e;
    } finally {
      sys.close(fd);
    }
    return await importFile(file, input, name, showProgress, digest);
  } finally {
    await store.discard(spool, [file]);
  }
}

function readable(path: string): boolean {
  try {
    sys.close(sys.openRead(path));
    return true;
  } catch {
    return false;
  }
}

/** Import path, named input in messages. */
async function importFile(path: string, input: string, name?: string, showProgress = true, digest?: string): Promise<ImageRecord[]> {
  let progress: Progress | undefined;
  const store = await Store.open();
  const st = sys.stat(path);
  if (!st) throw new BunkerError(`${input}: no such file or directory`);
  try {
    if (st.kind === "dir") {
      if (digest) throw new BunkerError(`--digest checks a bunker bundle, and ${input} is a directory`);
      if (!sys.stat(`${path}/oci-layout`)) throw new BunkerError(`${input} is a directory but not an OCI image layout (no oci-layout file)`);
      return await importOciLayout(store, dirBlobs(path), name, input);
    }
    if (st.kind !== "file") throw new BunkerError(`${input} is not a regular file, a pipe or a directory: not an archive`);
    if (st.size === 0) throw new BunkerError(`${input} is empty: not an archive`);
    let how: ReturnType<typeof sniff>;
    try {
      how = sniff(await head(fileStream(path), 6));
    } catch (e) {
      throw e instanceof sys.SysError ? new BunkerError(`cannot read ${input}: ${e.reason}`) : e;
    }
    if (how === "xz" || how === "bzip2") throw new BunkerError(`${input} is ${how}-compressed, which bunker does not read: recompress it with gzip or zstd`);
    // peek at the first entry to tell an image archive from a root filesystem
    let first: string | undefined;
    let read = 0;
    for await (const e of readTar(counted(decompress(fileStream(path), how, true), { advance: (n) => (read += n) }))) {
      if (e.header.path.replace(/^(\.\/)+/, "").replace(/^\.?\/?$/, "") === "") continue; // "./" itself
      first = e.header.path;
      break;
    }
    if (read === 0) throw new BunkerError(`${input} is ${how}-compressed nothing: not an archive`);
    const kind = archiveKind(first);
    if (digest && kind !== "bundle") throw new BunkerError(`--digest checks a bunker bundle, and ${input} is not one`);
    // the pass that reads the whole file shows a progress bar on a terminal
    progress = showProgress ? Progress.forTerminal("import", st.size) : undefined;
    const whole = () => counted(fileStream(path), progress);
    if (kind === "rootfs") return [await importRootfs(store, whole(), name, input)];
    if (kind === "bundle") {
      const b = await importBundle(decompress(whole(), how), name, (entries, check) => stageLayer(store, entries, { layer: false, digests: true }, check), digest);
      noteOwners(store, [b.layer]);
      if (b.dropped.length) log().info(`the bundle's config asks for what an imported image may not have, left out: ${b.dropped.join(", ")} (give what you trust to bunker run: -v, --cap-add)`);
      return [register(store, b.manifest.image, b.configBytes, b.names, [b.layer], input, b.runtime)];
    }
    // image archives need random access: a compressed one is unpacked to a staging file first
    const spool = how !== "none" ? store.staging() : undefined;
    const tarFile = spool ? `${spool.dir}/archive.tar` : path;
    try {
      if (spool) {
        const fd = sys.openWrite(tarFile, 0o600);
        try {
          let n = 0;
          for await (const chunk of decompress(whole(), how)) {
            if ((n += chunk.length) > MAX_BYTES) throw new ArchiveError(`${input} is more than ${MAX_BYTES} bytes once decompressed`);
            sys.writeAll(fd, chunk, `write ${tarFile}`);
          }
        } finally {
          sys.close(fd);
        }
      }
      const idx = await indexTar(tarFile);
      if (idx.members.has(MANIFEST) && idx.members.has(DIGESTS)) {
        throw new BunkerError(`${input} holds a bunker bundle's files, but ${MANIFEST} does not come first: it was packed again, and its digests cannot be checked; import the bundle as it was exported`);
      }
      if (idx.members.has("oci-layout")) return await importOciLayout(store, tarBlobs(tarFile, idx), name, input);
      if (idx.members.has("manifest.json")) return await importDockerArchive(store, tarFile, idx, name, input);
      if (idx.members.has("repositories")) throw new BunkerError(`${input} is a docker save of the old format (no manifest.json): save it again with Docker 1.10 or later, or podman`);
      // only its first name looked like an image's (a directory named by a digest, say): a root filesystem after all
      return [await importRootfs(store, counted(fileStream(tarFile), spool ? undefined : progress), name, input)];
    } finally {
      if (spool) await store.discard(spool, [tarFile]);
    }
  } catch (e) {
    // the layers a refused import put in place go with it, unless an image uses them meanwhile (its own error is the one to tell)
    if (store.created.length) await store.removeUnused(() => store.created).catch(() => {});
    if (e instanceof TarError || e instanceof TruncatedError || e instanceof TooLargeError || e instanceof ArchiveError) throw new BunkerError(`${input}: ${e.message}`);
    throw e;
  } finally {
    progress?.done(); // ends the bar's line, before any message
    await store.endLease(); // its image is registered, or it failed: what it held goes with a sweep if no image uses it
  }
}

export type { TarEntry };

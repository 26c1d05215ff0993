// bunker import BUNDLE: verify every entry against bunker.sha256 while the
// root filesystem is unpacked into staging; only then does it become an
// image that `bunker run NAME` starts with the same config.
import { BunkerError } from "../errors.ts";
import { collect } from "../image/bytes.ts";
import { ArchiveError } from "../image/unpack.ts";
import { ARCHIVE_NAME, isObject, type LayerInfo, malformedConfig, validImageName } from "../image/store.ts";
import { log } from "../log.ts";
import { type EntrySource, type FileDigest, readTar, type TarEntry, type TarHeader } from "../image/tar.ts";
import { checkShape } from "../spec/shape.ts";
import type { Spec } from "../spec/types.ts";
import { appSpec, type BundleManifest, DIGESTS, Digests, FORMAT, MANIFEST, ROOTFS, type Row, row, VERSION } from "./format.ts";

const dec = new TextDecoder();
/** The largest bunker.json, config.json or bunker.sha256 read. */
const OWN_MAX = 64 << 20;

/**
 * Read a bundle's tar stream; `stage` unpacks the root filesystem entries it
 * is given and calls `check` once they are all read, before committing.
 */
export async function importBundle(
  source: AsyncIterable<Uint8Array>,
  name: string | undefined,
  stage: (entries: EntrySource, check: () => Promise<string>) => Promise<LayerInfo>,
  /** The digest the bundle must have (`import --digest`). */
  expected?: string,
): Promise<{ manifest: BundleManifest; runtime: Spec; dropped: string[]; configBytes: Uint8Array; layer: LayerInfo; names: string[] }> {
  let manifest: BundleManifest | undefined;
  let runtime: Spec | undefined;
  let trailer: string | undefined;
  const digests = new Digests();
  // rows not added yet, in order: from the first file whose digest the unpacker has still to
  // report (it does every DIGEST_BATCH files), so at most that many files' rows wait here
  const waiting: [Row, FileDigest?][] = [];
  /** Add the rows whose digests are known, in order; at the end, all of them. */
  const settle = (end = false) => {
    let n = 0;
    for (; n < waiting.length; n++) {
      const [r, digest] = waiting[n]!;
      if (digest && digest.sha256 === undefined) {
        if (!end) break;
        throw new ArchiveError(`the unpacker reported no digest for "${r[0]}"`); // never a row without one
      }
      if (digest) r[8] = digest.sha256!;
      digests.add(r);
    }
    waiting.splice(0, n);
  };
  const tar = readTar(source);
  // files the unpacker does not hash: one hasher for every one in turn (digest() resets it), as making
  // one per entry cost ~20 ms in 6,676; it sees each chunk as the tar reader hands it out
  const hasher = new Bun.CryptoHasher("sha256");
  const seen = (h: TarHeader, digest?: FileDigest) => {
    waiting.push([row(h, h.type === "file" && !digest ? hasher.digest("hex") : ""), digest]);
    settle();
  };
  /** The file handed out last, whose row waits for the rest of its data. */
  let handed: Handed | undefined;

  /** The bundle's own files, read on the way. */
  const own = (h: TarHeader, bytes: Uint8Array) => {
    if (h.path === DIGESTS) return void (trailer = dec.decode(bytes)); // not a row of its own
    hasher.update(bytes);
    seen(h);
    const parsed = parse(bytes, h.path);
    if (h.path === MANIFEST) manifest = checkManifest(parsed);
    else {
      const wrong = checkShape(parsed);
      if (wrong.length) throw new ArchiveError(`${wrong[0]} in the bundle: the bundle is corrupt`);
      runtime = parsed as Spec;
    }
  };

  /** What the unpacker gets for a tar entry: an entry, null at the end, or undefined to read on. */
  const take = (e: TarEntry | null): TarEntry | null | undefined | Promise<TarEntry | null> => {
    if (!e) return null;
    const h = e.header;
    if (trailer !== undefined) throw new ArchiveError(`an entry follows ${DIGESTS}: the bundle is corrupt`);
    if (h.path === MANIFEST || h.path === "config.json" || h.path === DIGESTS) {
      if (h.size > OWN_MAX) throw new ArchiveError(`${h.path} in the bundle is larger than ${OWN_MAX} bytes`);
      const bytes = e.readNow?.();
      if (bytes) return void own(h, bytes);
      return collect(e.data(), OWN_MAX).then((b) => (own(h, b), next()));
    }
    if (!manifest) throw new ArchiveError(`${MANIFEST} must come first in a bundle`);
    if (h.path !== ROOTFS && !h.path.startsWith(`${ROOTFS}/`)) throw new ArchiveError(`unexpected entry "${h.path}" in a bundle`);
    const path = h.path.slice(ROOTFS.length + 1);
    if (h.xattrs && manifest.version < 2) {
      throw new ArchiveError(`this bundle is format version ${manifest.version}, whose digests do not cover xattrs ("${h.path}" has some): export it again with this bunker`);
    }
    const owner = manifest.owners && Object.hasOwn(manifest.owners, path) ? manifest.owners[path] : undefined;
    if (h.type === "hardlink" && !h.linkname.startsWith(`${ROOTFS}/`)) throw new ArchiveError(`hard link "${h.path}" in the bundle points out of ${ROOTFS}/: the bundle is corrupt`);
    const header: TarHeader = { ...h, path, linkname: h.type === "hardlink" ? h.linkname.slice(ROOTFS.length + 1) : h.linkname };
    if (owner) [header.uid, header.gid, header.mode] = owner; // owners the exporting store could not hold
    if (h.type !== "file") {
      seen(h);
      return path === "" ? undefined : { header, data: () => (async function* () {})() };
    }
    const digest: FileDigest = {};
    const f: Handed = { header: h, digest, hash: (chunk) => digest.byUnpacker || hasher.update(chunk), entry: e };
    handed = f;
    return {
      header,
      digest,
      data: () => (f.body = e.data(f.hash)),
      readNow: () => {
        const bytes = e.readNow?.(f.hash);
        f.whole ||= bytes !== undefined;
        return bytes;
      },
    };
  };

  /** The next entry for the unpacker. */
  const next = (): TarEntry | null | Promise<TarEntry | null> => {
    for (;;) {
      const e = tar.nextEntry();
      if (e instanceof Promise) return e.then((got) => (got ? (take(got) ?? next()) : null));
      const out = take(e);
      if (out !== undefined) return out;
    }
  };

  /** The last file's row, once all of its data is hashed: what the unpacker left unread is hashed all the same. */
  const finish = (): Promise<void> | undefined => {
    const f = handed;
    if (!f) return;
    handed = undefined;
    if (!f.whole && !f.body && f.entry.readNow?.(f.hash) === undefined) f.body = f.entry.data(f.hash);
    if (!f.body) return void seen(f.header, f.digest.byUnpacker ? f.digest : undefined);
    return (async () => {
      for await (const _ of f.body!) void _;
      seen(f.header, f.digest.byUnpacker ? f.digest : undefined);
    })();
  };

  /** The root filesystem's entries, for the unpacker. */
  const rootfs: EntrySource = {
    nextEntry: () => {
      const done = finish();
      return done ? done.then(next) : next();
    },
    close: () => tar.close(),
  };

  const check = async () => {
    if (trailer === undefined) throw new ArchiveError(`${DIGESTS} is missing: the bundle is truncated`);
    settle(true);
    const text = trailer.trimEnd();
    const nl = text.indexOf("\n");
    const summary = parse(new TextEncoder().encode(nl < 0 ? text : text.slice(0, nl)), DIGESTS) as { digest?: string; entries?: number };
    if (typeof summary.digest !== "string") throw new ArchiveError(`${DIGESTS} has no digest`);
    if (digests.digest() !== summary.digest) {
      // name the first entry whose row differs, wherever it stands in either list (the rows are split only here)
      const lines = nl < 0 ? [] : text.slice(nl + 1).split("\n");
      const want = new Map(lines.map((l) => [pathOf(l), l]));
      const bad = digests.lines.find((l) => want.get(pathOf(l)) !== l);
      const missing = bad === undefined ? lines.find((l) => !digests.lines.includes(l)) : undefined;
      const which = bad ?? missing;
      throw new ArchiveError(
        which !== undefined ? `"${pathOf(which)}" does not match ${DIGESTS}: the bundle is corrupt` : `the bundle's digest does not match ${DIGESTS}: the bundle is corrupt`,
      );
    }
    // the rows it lists are the rows its digest covers (those just computed), every one of them
    const listed = nl < 0 ? "" : `${text.slice(nl + 1)}\n`;
    if (summary.entries !== digests.count || `sha256:${new Bun.CryptoHasher("sha256").update(listed).digest("hex")}` !== summary.digest) {
      throw new ArchiveError(`${DIGESTS} lists entries other than those its digest covers: the bundle is corrupt`);
    }
    if (expected && summary.digest !== expected) throw new ArchiveError(`the bundle's digest is ${summary.digest}, not ${expected} as --digest says`);
    return summary.digest;
  };

  const layer = await stage(rootfs, async () => {
    const digest = await check();
    if (!manifest || !runtime) throw new ArchiveError("the bundle lacks bunker.json or config.json");
    return digest;
  });
  // the image config names the bundle's one layer, so the image id follows the content
  const image = { ...manifest!.image, rootfs: { type: "layers", diff_ids: [layer.diffId] } };
  manifest!.image = image;
  const configBytes = new TextEncoder().encode(JSON.stringify(image));
  const names = name ? [name] : bundleName(manifest!.source);
  // what runs, not this or that host's ids, nor anything of the host an image may not have
  const app = appSpec(runtime!);
  return { manifest: manifest!, runtime: app.spec, dropped: app.dropped, configBytes, layer, names };
}

/** A file handed to the unpacker, as read from the tar. */
interface Handed {
  header: TarHeader;
  digest: FileDigest;
  /** Sees the file's data as it is read (unless the unpacker hashes it). */
  hash: (chunk: Uint8Array) => void;
  entry: TarEntry;
  /** Its data as a stream, once begun. */
  body?: AsyncGenerator<Uint8Array>;
  /** Its data was read at once. */
  whole?: boolean;
}

function pathOf(line: string): string {
  try {
    return String((JSON.parse(line) as unknown[])[0]);
  } catch {
    return line;
  }
}

function parse(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(dec.decode(bytes));
  } catch {
    throw new ArchiveError(`${what} in the bundle is not valid JSON`);
  }
}

function checkManifest(v: unknown): BundleManifest {
  const m = v as BundleManifest;
  if (typeof m !== "object" || m === null || m.format !== FORMAT) throw new ArchiveError(`${MANIFEST} is not a bunker bundle manifest`);
  // the digests say it is what was exported; this, that it is what an export writes (what is read of it is typed)
  if (!Number.isSafeInteger(m.version) || m.version < 1) throw new ArchiveError(`${MANIFEST}'s version is malformed: the bundle is corrupt`);
  if (m.version > VERSION) throw new BunkerError(`this bundle is format version ${m.version}; this bunker reads up to ${VERSION}: upgrade bunker`);
  const s = m.source as unknown;
  const owner = (o: unknown) => Array.isArray(o) && o.length === 3 && o.every((n) => Number.isSafeInteger(n) && n >= 0);
  const fields: [string, boolean][] = [
    ["source", isObject(s) && (s.kind === "container" || s.kind === "image") && typeof s.id === "string" && (s.name === undefined || typeof s.name === "string")],
    ["image", malformedConfig(m.image) === undefined],
    ["owners", m.owners === undefined || (isObject(m.owners) && Object.values(m.owners).every(owner))],
  ];
  const wrong = fields.find(([, ok]) => !ok)?.[0];
  if (wrong) throw new ArchiveError(`${MANIFEST}'s ${wrong} is malformed: the bundle is corrupt`);
  return m;
}

/** The name a bundle gives its image: a container's, in lower case as an image name must be; an image's as it had it (from an archive, say). */
function bundleName({ kind, name: source }: BundleManifest["source"]): string[] {
  if (source === undefined) return [];
  const name = kind === "image" ? source : source.toLowerCase();
  if (validImageName(name) || (kind === "image" && ARCHIVE_NAME.test(name))) return [name];
  log().info(`the bundle's name "${source.slice(0, 80)}" is no image name: imported without one (give it one with --name)`);
  return [];
}

// bunker import BUNDLE: verify every entry against bunker.sha256 while the
// root filesystem is unpacked into staging; only then does it become an
// image that `bunker run NAME` starts with the same config.
import { BunkerError } from "../errors.ts";
import { collect } from "../image/bytes.ts";
import { ArchiveError } from "../image/unpack.ts";
import type { LayerInfo } from "../image/store.ts";
import { type FileDigest, readTar, type TarEntry, type TarHeader } from "../image/tar.ts";
import type { Spec } from "../spec/types.ts";
import { type BundleManifest, DIGESTS, Digests, FORMAT, MANIFEST, ROOTFS, type Row, row, VERSION } from "./format.ts";

const dec = new TextDecoder();

/** The runtime config kept with the image: what runs, not this or that host's ids. */
function hostless(spec: Spec): Spec {
  const out = structuredClone(spec);
  if (out.linux) {
    delete out.linux.uidMappings;
    delete out.linux.gidMappings;
  }
  return out;
}

/**
 * Read a bundle's tar stream; `stage` unpacks the root filesystem entries it
 * is given and calls `check` once they are all read, before committing.
 */
export async function importBundle(
  tar: AsyncIterable<Uint8Array>,
  name: string | undefined,
  stage: (entries: AsyncIterable<TarEntry>, check: () => Promise<string>) => Promise<LayerInfo>,
): Promise<{ manifest: BundleManifest; runtime: Spec; configBytes: Uint8Array; layer: LayerInfo; names: string[] }> {
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
      if (digest && digest.sha256 === undefined && !end) break;
      if (digest) r[8] = digest.sha256 ?? "";
      digests.add(r);
    }
    waiting.splice(0, n);
  };
  const entries = readTar(tar);

  /** The rootfs entries for the unpacker; the bundle's own files are read on the way. */
  async function* rootfs(): AsyncGenerator<TarEntry> {
    // files the unpacker does not hash: one hasher for every one in turn (digest() resets it), as making
    // one per entry cost ~20 ms in 6,676; it sees each chunk as the tar reader hands it out
    const hasher = new Bun.CryptoHasher("sha256");
    for await (const e of entries) {
      const h = e.header;
      if (trailer !== undefined) throw new ArchiveError(`an entry follows ${DIGESTS}: the bundle is corrupt`);
      const seen = (digest?: FileDigest) => {
        waiting.push([row(h, h.type === "file" && !digest ? hasher.digest("hex") : ""), digest]);
        settle();
      };
      if (h.path === MANIFEST || h.path === "config.json" || h.path === DIGESTS) {
        const bytes = await collect(e.data(), 64 << 20);
        if (h.path === DIGESTS) {
          trailer = dec.decode(bytes);
          continue; // not a row of its own
        }
        hasher.update(bytes);
        seen();
        const parsed = parse(bytes, h.path);
        if (h.path === MANIFEST) manifest = checkManifest(parsed);
        else runtime = parsed as Spec;
        continue;
      }
      if (!manifest) throw new ArchiveError(`${MANIFEST} must come first in a bundle`);
      if (h.path !== ROOTFS && !h.path.startsWith(`${ROOTFS}/`)) throw new ArchiveError(`unexpected entry "${h.path}" in a bundle`);
      const path = h.path.slice(ROOTFS.length + 1);
      const owner = manifest.owners?.[path];
      const header: TarHeader = { ...h, path, linkname: h.type === "hardlink" ? h.linkname.slice(ROOTFS.length + 1) : h.linkname };
      if (owner) [header.uid, header.gid, header.mode] = owner; // owners the exporting store could not hold
      if (h.type !== "file") {
        seen();
        if (path !== "") yield { header, data: () => (async function* () {})() };
        continue;
      }
      const digest: FileDigest = {};
      const data = e.data((chunk) => digest.byUnpacker || hasher.update(chunk));
      yield { header, data: () => data, digest };
      for await (const _ of data) void _; // what the unpacker did not read (a device, say) is hashed all the same
      seen(digest.byUnpacker ? digest : undefined);
    }
  }

  const check = async () => {
    if (trailer === undefined) throw new ArchiveError(`${DIGESTS} is missing: the bundle is truncated`);
    settle(true);
    const [head, ...lines] = trailer.trimEnd().split("\n");
    const summary = parse(new TextEncoder().encode(head), DIGESTS) as { digest?: string; entries?: number };
    if (typeof summary.digest !== "string") throw new ArchiveError(`${DIGESTS} has no digest`);
    if (digests.digest() !== summary.digest) {
      // name the first entry whose row differs, wherever it stands in either list
      const want = new Map(lines.map((l) => [pathOf(l), l]));
      const bad = digests.lines.find((l) => want.get(pathOf(l)) !== l);
      const missing = bad === undefined ? lines.find((l) => !digests.lines.includes(l)) : undefined;
      const which = bad ?? missing;
      throw new ArchiveError(
        which !== undefined ? `"${pathOf(which)}" does not match ${DIGESTS}: the bundle is corrupt` : `the bundle's digest does not match ${DIGESTS}: the bundle is corrupt`,
      );
    }
    return summary.digest;
  };

  const layer = await stage(rootfs(), async () => {
    const digest = await check();
    if (!manifest || !runtime) throw new ArchiveError("the bundle lacks bunker.json or config.json");
    return digest;
  });
  // the image config names the bundle's one layer, so the image id follows the content
  const image = { ...manifest!.image, rootfs: { type: "layers", diff_ids: [layer.diffId] } };
  manifest!.image = image;
  const configBytes = new TextEncoder().encode(JSON.stringify(image));
  const names = name ? [name] : manifest!.source.name ? [manifest!.source.name] : [];
  return { manifest: manifest!, runtime: hostless(runtime!), configBytes, layer, names };
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
  if (m.version > VERSION) throw new BunkerError(`this bundle is format version ${m.version}; this bunker reads up to ${VERSION}: upgrade bunker`);
  return m;
}

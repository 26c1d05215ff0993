// Reading a bundle's tar stream as import does, without a stage: every row is
// recomputed and checked whether the tar reader hands an entry out at once
// (its header and data in the chunk at hand) or has to wait for the next
// chunk, and whether bunker or the unpacker hashes the files.
import { expect, test } from "bun:test";
import { importBundle } from "../../src/bundle/import.ts";
import { Digests, DIGESTS, FORMAT, MANIFEST, row, VERSION } from "../../src/bundle/format.ts";
import type { TarHeader } from "../../src/image/tar.ts";
import { planUnpack, U } from "../../src/image/unpack.ts";
import { reusing } from "../helpers/chunks.ts";
import { archive, header as h } from "../helpers/tar.ts";

const enc = new TextEncoder();
const sha256 = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");
const maps = [{ containerID: 0, hostID: 100000, size: 65536 }];

/** The rootfs of the test bundle: small files, an empty one, files larger than a chunk, a link. */
function rootfs(): [TarHeader, Uint8Array?][] {
  const out: [TarHeader, Uint8Array?][] = [[h({ type: "dir", path: "rootfs", mode: 0o755 })], [h({ type: "dir", path: "rootfs/etc", mode: 0o755 })]];
  for (let i = 0; i < 40; i++) {
    const data = enc.encode(`file ${i} `.repeat(i * 37));
    out.push([h({ path: `rootfs/etc/f${i}`, size: data.length, uid: i % 3 }), data]);
  }
  const big = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 31) % 251);
  out.push([h({ path: "rootfs/big", size: big.length }), big]);
  out.push([h({ type: "symlink", path: "rootfs/link", linkname: "etc/f1" })]);
  out.push([h({ type: "hardlink", path: "rootfs/hard", linkname: "rootfs/etc/f2" })]);
  return out;
}

/** A bundle's tar: bunker.json, config.json, the rootfs, then bunker.sha256 over what came before (with `tamper` applied after). */
function bundleTar(files: [TarHeader, Uint8Array?][], tamper?: (path: string, data: Uint8Array) => void): Uint8Array {
  const manifest = { format: FORMAT, version: VERSION, created: "2026-01-01T00:00:00Z", source: { kind: "image", id: "x" }, image: { config: { Cmd: ["/bin/sh"] } } };
  const own = (path: string, text: string): [TarHeader, Uint8Array] => {
    const data = enc.encode(text);
    return [h({ path, size: data.length }), data];
  };
  const all = [own(MANIFEST, JSON.stringify(manifest)), own("config.json", JSON.stringify({ ociVersion: "1.0.2", process: { args: ["/bin/sh"] } })), ...files];
  const digests = new Digests();
  for (const [hd, data] of all) digests.add(row(hd, hd.type === "file" ? sha256(data ?? new Uint8Array(0)) : ""));
  return archive(
    [...all, own(DIGESTS, digests.file())].map(([hd, data]) => {
      const copy = data?.slice();
      if (copy) tamper?.(hd.path, copy);
      return [hd, copy];
    }),
  );
}

/** Import a bundle's tar into memory: the files' contents by path, as a stage would have written them. */
async function importInto(tar: Uint8Array, chunk: number, unpackerHashes: boolean) {
  const files = new Map<string, Uint8Array[]>();
  const flagged: string[] = []; // files the "unpacker" hashes, in order
  let at = "";
  const result = await importBundle(reusing(tar, chunk), undefined, async (entries, check) => {
    await planUnpack(entries, { uidMappings: maps, gidMappings: maps, layer: false, maxEntries: 1000, maxBytes: 1e9, hash: unpackerHashes }, {
      record: (r) => {
        if (r.type !== U.FILE) return;
        files.set((at = r.path), []);
        if (r.flags & 0x4) flagged.push(r.path);
      },
      data: (b) => void files.get(at)!.push(b.slice()),
      digests: (count) => flagged.splice(0, count).map((p) => sha256(Buffer.concat(files.get(p)!))),
    });
    const diffId = await check();
    return { diffId, entries: 0, bytes: 0, altered: {}, devices: [] };
  });
  return { result, files: new Map([...files].map(([p, parts]) => [p, Buffer.concat(parts)])), flagged };
}

test("a bundle imports the same whatever its chunks, with bunker or the unpacker hashing", async () => {
  const files = rootfs();
  const tar = bundleTar(files);
  for (const chunk of [1, 7, 512, 4096, 100_000, 1 << 20]) {
    for (const unpackerHashes of [false, true]) {
      const { result, files: got } = await importInto(tar, chunk, unpackerHashes);
      expect(result.layer.diffId).toStartWith("sha256:");
      expect(result.runtime.process?.args).toEqual(["/bin/sh"]);
      for (const [hd, data] of files) if (hd.type === "file") expect(got.get(hd.path.slice("rootfs/".length))).toEqual(Buffer.from(data!));
    }
  }
});

test("a changed byte in any file, small or spanning chunks, is found whatever the chunks", async () => {
  for (const victim of ["rootfs/etc/f3", "rootfs/big", "rootfs/etc/f39"]) {
    const tar = bundleTar(rootfs(), (path, data) => path === victim && (data[data.length - 1]! ^= 1));
    for (const chunk of [7, 4096, 1 << 20]) {
      for (const unpackerHashes of [false, true]) {
        await expect(importInto(tar, chunk, unpackerHashes)).rejects.toThrow(`"${victim}" does not match ${DIGESTS}: the bundle is corrupt`);
      }
    }
  }
});

test("what the unpacker leaves unread of a file, all or part of it, is hashed all the same", async () => {
  const tar = bundleTar(rootfs());
  for (const chunk of [7, 4096, 1 << 20]) {
    let n = 0;
    const result = await importBundle(reusing(tar, chunk), undefined, async (entries, check) => {
      for (let e = await entries.nextEntry(); e; e = await entries.nextEntry()) {
        if (e.header.type !== "file") continue;
        const how = n++ % 3; // read whole, read one chunk of, or leave alone
        if (how === 0 && !e.readNow?.()) for await (const _ of e.data()) void _;
        if (how === 1) await e.data().next();
      }
      return { diffId: await check(), entries: 0, bytes: 0, altered: {}, devices: [] };
    });
    expect(result.layer.diffId).toStartWith("sha256:");
  }
});

// Reading a bundle's tar stream as import does, without a stage: every row is
// recomputed and checked whether the tar reader hands an entry out at once
// (its header and data in the chunk at hand) or has to wait for the next
// chunk, and whether bunker or the unpacker hashes the files.
import { expect, test } from "bun:test";
import { importBundle } from "../../src/bundle/import.ts";
import { Digests, DIGESTS, FORMAT, MANIFEST, row, VERSION } from "../../src/bundle/format.ts";
import type { EntrySource, TarHeader } from "../../src/image/tar.ts";
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

type Entry = [TarHeader, Uint8Array?];

/**
 * A bundle's tar: bunker.json (with `over` in it), config.json, the rootfs, then bunker.sha256 over what came
 * before (with `tamper` applied after to the data, and `arrange` to the entries: they may be changed, dropped,
 * added or moved).
 */
function bundleTar(
  files: Entry[],
  tamper?: (path: string, data: Uint8Array) => void,
  arrange = (signed: Entry[], trailer: Entry): Entry[] => [...signed, trailer],
  over: object = {},
): Uint8Array {
  const manifest = { format: FORMAT, version: VERSION, created: "2026-01-01T00:00:00Z", source: { kind: "image", id: "x" }, image: { config: { Cmd: ["/bin/sh"] } }, ...over };
  const own = (path: string, text: string): [TarHeader, Uint8Array] => {
    const data = enc.encode(text);
    return [h({ path, size: data.length }), data];
  };
  const all = [own(MANIFEST, JSON.stringify(manifest)), own("config.json", JSON.stringify({ ociVersion: "1.0.2", root: { path: "rootfs" }, process: { user: { uid: 0, gid: 0 }, cwd: "/", args: ["/bin/sh"] } })), ...files];
  const digests = new Digests();
  for (const [hd, data] of all) digests.add(row(hd, hd.type === "file" ? sha256(data ?? new Uint8Array(0)) : ""));
  return archive(
    arrange(all.map(([hd, data]) => [{ ...hd }, data]), own(DIGESTS, digests.file())).map(([hd, data]) => {
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

/** The header of `path` among entries. */
const at = (all: Entry[], path: string) => all.find(([hd]) => hd.path === path)![0];

test("a change to any entry's metadata, or to the list of entries, is refused", async () => {
  const cases: [string, (all: Entry[]) => Entry[] | void][] = [
    ["mode", (all) => void (at(all, "rootfs/etc/f3").mode = 0o4755)],
    ["uid", (all) => void (at(all, "rootfs/etc/f3").uid = 7)],
    ["gid", (all) => void (at(all, "rootfs/etc/f3").gid = 7)],
    ["mtime", (all) => void (at(all, "rootfs/etc/f3").mtime += 1)],
    ["a directory's mode", (all) => void (at(all, "rootfs/etc").mode = 0o777)],
    ["path", (all) => void (at(all, "rootfs/etc/f3").path = "rootfs/etc/g3")],
    ["symlink target", (all) => void (at(all, "rootfs/link").linkname = "etc/f4")],
    ["hard link target", (all) => void (at(all, "rootfs/hard").linkname = "rootfs/etc/f4")],
    ["type", (all) => void Object.assign(at(all, "rootfs/link"), { type: "hardlink", linkname: "rootfs/etc/f1" })],
    ["an owner in bunker.json", (all) => void (all[0]![1] = enc.encode(JSON.stringify({ ...JSON.parse(new TextDecoder().decode(all[0]![1])), owners: { "etc/f3": [0, 0, 0o4755] } })), at(all, MANIFEST).size = all[0]![1]!.length)],
    ["an entry added", (all) => [...all, [h({ type: "dir", path: "rootfs/extra" })]]],
    ["an entry removed", (all) => all.filter(([hd]) => hd.path !== "rootfs/link")],
    ["two entries swapped", (all) => [...all.slice(0, 5), all[6]!, all[5]!, ...all.slice(7)]],
  ];
  for (const [what, alter] of cases) {
    const tar = bundleTar(rootfs(), undefined, (signed, trailer) => [...(alter(signed) ?? signed), trailer]);
    for (const unpackerHashes of [false, true]) {
      const got = await importInto(tar, 4096, unpackerHashes).then(() => "imported", (e: Error) => e.message);
      expect({ what, got }).toEqual({ what, got: expect.stringContaining("the bundle is corrupt") });
    }
  }
});

test("a bunker.json its digests cover, but not as an export writes it, is refused, naming the field; a hard link out of rootfs/ too", async () => {
  const cases: [object, string][] = [
    [{ source: null }, "source"],
    [{ source: { kind: "image", id: "x", name: 123 } }, "source"],
    [{ source: { kind: "volume", id: "x" } }, "source"],
    [{ image: { config: { Env: "PATH=/bin" } } }, "image"],
    [{ image: "x" }, "image"],
    [{ owners: { "etc/f3": ["0", 0, 0o644] } }, "owners"],
    [{ owners: { "etc/f3": [-1, 0, 0o644] } }, "owners"],
    [{ version: "3" }, "version"],
    [{ version: 1.5 }, "version"],
    [{ version: 0 }, "version"],
  ];
  for (const [over, field] of cases) {
    const got = await importInto(bundleTar(rootfs(), undefined, undefined, over), 4096, false).then(() => "imported", (e: Error) => e.message);
    expect({ over, got }).toEqual({ over, got: `${MANIFEST}'s ${field} is malformed: the bundle is corrupt` });
  }
  // signed as it is: a link whose target is not under rootfs/ (its first 7 bytes were cut as if they were "rootfs/")
  const files = rootfs().map(([hd, data]): Entry => [hd.path === "rootfs/hard" ? { ...hd, linkname: "XXXXXXXetc/f2" } : hd, data]);
  const got = await importInto(bundleTar(files), 4096, false).then(() => "imported", (e: Error) => e.message);
  expect(got).toBe('hard link "rootfs/hard" in the bundle points out of rootfs/: the bundle is corrupt');
});

test("a bundle's name is its image's: a container's in lower case, an archive's as it came; one that is neither is left out", async () => {
  const named = async (name: string, kind = "container") => (await importInto(bundleTar(rootfs(), undefined, undefined, { source: { kind, id: "x", name } }), 4096, false)).result.names;
  expect(await named("web")).toEqual(["web"]);
  expect(await named("Upper_Case.1")).toEqual(["upper_case.1"]);
  expect(await named("localhost:5000/app:1", "image")).toEqual(["localhost:5000/app:1"]);
  expect(await named("Registry.Example/App:V1", "image")).toEqual(["Registry.Example/App:V1"]); // as a docker archive may name one
  expect(await named("../../etc/x")).toEqual([]);
  expect(await named("../../etc/x", "image")).toEqual([]);
});

test("a bunker.sha256 whose listed rows or count differ from what its digest covers is refused", async () => {
  const trailer = (edit: (rows: string[], summary: { digest: string; entries: number }) => string[]) =>
    bundleTar(rootfs(), undefined, (signed, [hd, data]) => {
      const [first, ...rows] = new TextDecoder().decode(data).trimEnd().split("\n");
      const summary = JSON.parse(first!);
      const listed = edit(rows, summary);
      const text = enc.encode(`${JSON.stringify(summary)}\n${listed.join("\n")}\n`.replace("\n\n", "\n"));
      return [...signed, [{ ...hd, size: text.length }, text]];
    });
  const cases: [string, Uint8Array][] = [
    ["a row's mode", trailer((rows) => rows.map((r) => (r.startsWith('["rootfs/etc/f3"') ? r.replace(",420,", ",493,") : r)))],
    ["a row dropped", trailer((rows) => rows.slice(1))],
    ["every row dropped", trailer(() => [])],
    ["the count", trailer((rows, summary) => ((summary.entries += 1), rows))],
  ];
  expect(new TextDecoder().decode(cases[0]![1])).toContain('["rootfs/etc/f3","file",493,'); // the edit took
  for (const [what, tar] of cases) {
    const got = await importInto(tar, 4096, false).then(() => "imported", (e: Error) => e.message);
    expect({ what, got }).toEqual({ what, got: `${DIGESTS} lists entries other than those its digest covers: the bundle is corrupt` });
  }
  // as written, it imports
  expect((await importInto(trailer((rows) => rows), 4096, false)).result.layer.diffId).toStartWith("sha256:");
});

test("a bundle without bunker.sha256 (cut at an entry's end) is refused as truncated", async () => {
  const tar = bundleTar(rootfs(), undefined, (signed) => signed);
  for (const unpackerHashes of [false, true]) await expect(importInto(tar, 4096, unpackerHashes)).rejects.toThrow(`${DIGESTS} is missing: the bundle is truncated`);
});

test("an entry after bunker.sha256 is refused, even one it lists", async () => {
  const tar = bundleTar(rootfs(), undefined, (signed, trailer) => [...signed.slice(0, -1), trailer, signed.at(-1)!]);
  await expect(importInto(tar, 4096, false)).rejects.toThrow(`an entry follows ${DIGESTS}: the bundle is corrupt`);
});

test("a file the stage asks for at once, does not get, and leaves unread, is hashed in full", async () => {
  const tar = bundleTar(rootfs());
  for (const chunk of [7, 4096]) {
    const result = await importBundle(reusing(tar, chunk), undefined, async (entries, check) => {
      for (let e = await entries.nextEntry(); e; e = await entries.nextEntry()) if (e.header.type === "file") e.readNow?.();
      return { diffId: await check(), entries: 0, bytes: 0, altered: {}, devices: [] };
    });
    expect(result.layer.diffId).toStartWith("sha256:");
  }
});

test("an xattr added to a file, which the unpacker would set, is refused", async () => {
  const cap = new Uint8Array([1, 0, 0, 2, 0x80, 0, 0, 0]); // cap_setuid, effective
  const tar = bundleTar(rootfs(), undefined, (signed, trailer) => (Object.assign(at(signed, "rootfs/etc/f3"), { xattrs: { "security.capability": cap } }), [...signed, trailer]));
  for (const unpackerHashes of [false, true]) await expect(importInto(tar, 4096, unpackerHashes)).rejects.toThrow(`"rootfs/etc/f3" does not match ${DIGESTS}`);
});

test("a file the unpacker takes on but never reports a digest for is refused, whatever bunker.sha256 lists for it", async () => {
  // the list says "" for every file's content, as a row whose digest never came would read
  const files = rootfs();
  const tar = bundleTar(files, undefined, (signed, trailer) => {
    const text = new TextDecoder().decode(trailer[1]!).trimEnd().split("\n");
    const rows = text.slice(1).map((l) => JSON.parse(l) as unknown[]);
    for (const r of rows) if (r[1] === "file" && String(r[0]).startsWith("rootfs/")) r[8] = "";
    const d = new Digests();
    for (const r of rows) d.add(r as Parameters<Digests["add"]>[0]);
    const out = enc.encode(d.file());
    return [...signed, [{ ...trailer[0], size: out.length }, out]];
  });
  const silent = importBundle(reusing(tar, 4096), undefined, async (entries, check) => {
    for (let e = await entries.nextEntry(); e; e = await entries.nextEntry()) {
      if (e.digest) e.digest.byUnpacker = true; // taken on, then never reported
      if (e.header.type === "file" && !e.readNow?.()) for await (const _ of e.data()) void _;
    }
    return { diffId: await check(), entries: 0, bytes: 0, altered: {}, devices: [] };
  });
  await expect(silent).rejects.toThrow(`"rootfs/etc/f0"`);
});

test("a bundle of format 1 imports, but not one with xattrs, which its rows did not cover", async () => {
  const v1 = (files: Entry[]) => bundleTar(files, undefined, undefined, { version: 1 });
  expect((await importInto(v1(rootfs()), 4096, false)).result.layer.diffId).toStartWith("sha256:");
  const withXattr = rootfs().map(([hd, data]): Entry => [hd.path === "rootfs/etc/f3" ? { ...hd, xattrs: { "user.a": enc.encode("1") } } : hd, data]);
  await expect(importInto(v1(withXattr), 4096, false)).rejects.toThrow('this bundle is format version 1, whose digests do not cover xattrs ("rootfs/etc/f3" has some)');
  expect((await importInto(bundleTar(withXattr), 4096, false)).result.layer.diffId).toStartWith("sha256:");
  // one of a later format than this bunker reads: refused, with the way out
  await expect(importInto(bundleTar(rootfs(), undefined, undefined, { version: VERSION + 1 }), 4096, false)).rejects.toThrow(
    `this bundle is format version ${VERSION + 1}; this bunker reads up to ${VERSION}: upgrade bunker`,
  );
});

test("owners kept in bunker.json are looked up as its own keys only: a file named constructor has none", async () => {
  const files: Entry[] = [...rootfs(), [h({ path: "rootfs/constructor", size: 1 }), enc.encode("c")], [h({ path: "rootfs/__proto__", size: 1 }), enc.encode("p")]];
  const seen = new Map<string, number>();
  const tar = bundleTar(files, undefined, undefined, { owners: { "etc/f1": [33, 33, 0o600] } });
  await importBundle(reusing(tar, 4096), undefined, async (entries, check) => {
    for (let e = await entries.nextEntry(); e; e = await entries.nextEntry()) {
      seen.set(e.header.path, e.header.uid);
      if (e.header.type === "file" && !e.readNow?.()) for await (const _ of e.data()) void _;
    }
    return { diffId: await check(), entries: 0, bytes: 0, altered: {}, devices: [] };
  });
  expect([seen.get("etc/f1"), seen.get("constructor"), seen.get("__proto__")]).toEqual([33, 0, 0]);
});

test("a bundle whose digest is not the one expected is refused, once all else is checked", async () => {
  const tar = bundleTar(rootfs());
  const stage = async (entries: EntrySource, check: () => Promise<string>) => {
    for (let e = await entries.nextEntry(); e; e = await entries.nextEntry()) if (e.header.type === "file" && !e.readNow?.()) for await (const _ of e.data()) void _;
    return { diffId: await check(), entries: 0, bytes: 0, altered: {}, devices: [] };
  };
  const { layer } = await importBundle(reusing(tar, 4096), undefined, stage);
  expect((await importBundle(reusing(tar, 4096), undefined, stage, layer.diffId)).layer.diffId).toBe(layer.diffId);
  const other = `sha256:${"0".repeat(64)}`;
  await expect(importBundle(reusing(tar, 4096), undefined, stage, other)).rejects.toThrow(`the bundle's digest is ${layer.diffId}, not ${other} as --digest says`);
});

// What each tar entry may do: the policy half of unpacking, without a stage.
import { expect, test } from "bun:test";
import { readTar, type TarHeader } from "../../src/image/tar.ts";
import { tarOf } from "../helpers/tar.ts";
import { cleanPath, DIGEST_BATCH, decodeRecordHead, encodeRecord, planUnpack, type Record_, U } from "../../src/image/unpack.ts";
import type { FileDigest, TarEntry } from "../../src/image/tar.ts";
import type { IdMapping } from "../../src/spec/types.ts";

const enc = new TextEncoder();

const ranges: IdMapping[] = [{ containerID: 0, hostID: 1000, size: 1 }, { containerID: 1, hostID: 100000, size: 65536 }];
const single: IdMapping[] = [{ containerID: 0, hostID: 1000, size: 1 }];

async function plan(entries: [Partial<TarHeader>, string?][], opts: { layer?: boolean; maps?: IdMapping[]; maxEntries?: number; maxBytes?: number } = {}) {
  const records: Record_[] = [];
  const stream: string[] = []; // what the stage reads, in order: record types and data
  async function* source() {
    yield tarOf(entries);
  }
  const maps = opts.maps ?? ranges;
  const result = await planUnpack(
    readTar(source()),
    { uidMappings: maps, gidMappings: maps, layer: opts.layer ?? false, maxEntries: opts.maxEntries ?? 1000, maxBytes: opts.maxBytes ?? 1e9 },
    { record: (r) => void (records.push(r), stream.push(`record ${r.type}`)), data: (b) => void stream.push(new TextDecoder().decode(b)) },
  );
  return { records, result, stream };
}

test("cleanPath keeps names inside the root", () => {
  expect(cleanPath("./a//b/./c/")).toBe("a/b/c");
  expect(cleanPath("./")).toBe("");
  expect(() => cleanPath("/etc/passwd")).toThrow("an absolute path");
  expect(() => cleanPath("a/../../b")).toThrow('climbs out of the root with ".."');
  expect(() => cleanPath("a/..")).toThrow("..");
  expect(() => cleanPath(`${"x".repeat(256)}`)).toThrow("longer than 255 bytes");
  expect(() => cleanPath(`a/${"é".repeat(128)}`)).toThrow("longer than 255 bytes"); // 130 characters, 258 bytes
  // names with dots that are names, kept as they are
  for (const name of ["...", ".b", "a.", "a..b", "a/.b/..c/d..", ".../x"]) expect(cleanPath(name)).toBe(name);
  for (const [raw, clean] of [["a/", "a"], ["a//b", "a/b"], ["./a/./b", "a/b"], ["a/.", "a"], [".", ""], ["", ""]]) expect(cleanPath(raw!)).toBe(clean!);
  expect(() => cleanPath("a/..")).toThrow("climbs out");
  expect(() => cleanPath("..")).toThrow("climbs out");
});

test("missing parents are made; directory times are set last", async () => {
  const { records } = await plan([[{ path: "a/b/c" }, "x"]]);
  expect(records.map((r) => [r.type, r.path])).toEqual([
    [U.DIR, "a"],
    [U.DIR, "a/b"],
    [U.FILE, "a/b/c"],
    [U.TIMES, "a"],
    [U.TIMES, "a/b"],
    [U.END, ""],
  ]);
});

test("the hostile corpus is refused, each with a message naming the entry", async () => {
  const refused: [string, [Partial<TarHeader>, string?][], string][] = [
    ["traversal", [[{ path: "../../etc/evil" }, "x"]], 'refusing entry "../../etc/evil": it climbs out of the root'],
    ["absolute path", [[{ path: "/etc/evil" }, "x"]], 'refusing entry "/etc/evil": an absolute path'],
    ["write through a symlink", [[{ type: "symlink", path: "l", linkname: "/tmp" }], [{ path: "l/evil" }, "x"]], 'refusing "l/evil": it would be written through the symbolic link "l"'],
    [
      "relative symlink chain",
      [[{ type: "symlink", path: "a", linkname: "." }], [{ type: "symlink", path: "b", linkname: "a/a/a/.." }], [{ path: "b/evil" }, "x"]],
      'written through the symbolic link "b"',
    ],
    ["a directory above a known one replaced by a file", [[{ type: "dir", path: "a/b" }], [{ path: "a" }, "x"], [{ path: "a/b/c" }, "x"]], 'refusing "a/b/c": "a" is not a directory'],
    ["directory replaced by a symlink", [[{ type: "dir", path: "d" }], [{ type: "symlink", path: "d", linkname: "/tmp" }], [{ path: "d/evil" }, "x"]], 'through the symbolic link "d"'],
    ["hard link out of the root", [[{ type: "hardlink", path: "h", linkname: "../../etc/passwd" }]], 'hard link "h" to "../../etc/passwd": it climbs out'],
    ["hard link to nothing", [[{ type: "hardlink", path: "h", linkname: "etc/shadow" }]], 'its target "etc/shadow" is not a file earlier in the archive'],
    ["hard link to a directory", [[{ type: "dir", path: "d" }], [{ type: "hardlink", path: "h", linkname: "d" }]], "is not a file earlier"],
    ["hard link to itself, in place of a file", [[{ path: "h" }, "x"], [{ type: "hardlink", path: "h", linkname: "h" }]], "is not a file earlier"],
  ];
  for (const [what, entries, message] of refused) {
    await expect(plan(entries), what).rejects.toThrow(message);
  }
});

test("whiteouts only in layers; traversing whiteout names are refused", async () => {
  const { records } = await plan([[{ path: "etc/.wh.gone" }, ""], [{ path: "data/.wh..wh..opq" }, ""], [{ path: ".wh..wh.plnk" }, ""]], { layer: true });
  expect(records.filter((r) => r.type === U.WHITEOUT || r.type === U.OPAQUE).map((r) => [r.type, r.path])).toEqual([
    [U.WHITEOUT, "etc/gone"],
    [U.OPAQUE, "data"],
  ]);
  // in a plain root filesystem a .wh. name is an ordinary file
  expect((await plan([[{ path: ".wh.x" }, ""]])).records[0]).toMatchObject({ type: U.FILE, path: ".wh.x" });
  await expect(plan([[{ path: "etc/.wh.." }, ""]], { layer: true })).rejects.toThrow("it names no file");
  await expect(plan([[{ path: "../.wh.x" }, ""]], { layer: true })).rejects.toThrow("climbs out of the root");
  // a hard link to a whiteout would make a second one, hiding another path of the layers below
  await expect(plan([[{ path: ".wh.x" }, ""], [{ type: "hardlink", path: "y", linkname: "x" }]], { layer: true })).rejects.toThrow('its target "x" is not a file earlier');
});

test("a whiteout hides only the layers below: what this layer has at its path stays, a directory opaque, in either order", async () => {
  const kinds = async (entries: [Partial<TarHeader>, string?][]) =>
    (await plan(entries, { layer: true })).records.filter((r) => r.type !== U.TIMES && r.type !== U.END).map((r) => `${r.type === U.DIR ? "dir" : r.type === U.OPAQUE ? "opaque" : r.type === U.WHITEOUT ? "whiteout" : r.type === U.UNLINK ? "unlink" : r.type === U.FILE ? "file" : r.type} ${r.path}`);
  // whited out, then made again: the whiteout device goes, the directory is opaque (an entry below it makes it as well)
  expect(await kinds([[{ path: ".wh.d" }, ""], [{ type: "dir", path: "d" }], [{ path: "d/new" }, "n"]])).toEqual(["whiteout d", "unlink d", "dir d", "opaque d", "file d/new"]);
  expect(await kinds([[{ path: "e/.wh.sub" }, ""], [{ path: "e/sub/z" }, "z"]])).toEqual(["dir e", "whiteout e/sub", "unlink e/sub", "dir e/sub", "opaque e/sub", "file e/sub/z"]);
  // the layer's own, then the whiteout: it stays (opaque, for a directory)
  expect(await kinds([[{ type: "dir", path: "d" }], [{ path: "d/new" }, "n"], [{ path: ".wh.d" }, ""]])).toEqual(["dir d", "file d/new", "opaque d"]);
  expect(await kinds([[{ path: "f" }, "mine"], [{ path: ".wh.f" }, ""]])).toEqual(["file f"]);
  // a file of its own where it whited out: it replaces the whiteout
  expect(await kinds([[{ path: ".wh.f" }, ""], [{ path: "f" }, "mine"]])).toEqual(["whiteout f", "unlink f", "file f"]);
});

test("device nodes are left out and counted, and hard links to them; FIFOs are made", async () => {
  const { records, result } = await plan([[{ type: "char", path: "dev/console", devmajor: 5, devminor: 1 }], [{ type: "hardlink", path: "dev/tty0", linkname: "dev/console" }], [{ type: "fifo", path: "p" }]]);
  expect(result.devices).toEqual(["dev/console", "dev/tty0"]);
  expect(records.map((r) => r.type)).toEqual([U.DIR, U.FIFO, U.TIMES, U.END]);
});

test("owners: applied where the map holds them; otherwise recorded, and setuid stripped", async () => {
  const entries: [Partial<TarHeader>, string?][] = [[{ path: "suid", uid: 33, gid: 33, mode: 0o4755 }, "x"], [{ path: "far", uid: 200000, gid: 0 }, "y"]];
  const withRanges = await plan(entries);
  expect(withRanges.records[0]).toMatchObject({ flags: 1, uid: 33, gid: 33, mode: 0o4755 });
  expect(withRanges.records[1]).toMatchObject({ flags: 0 }); // 200000 is outside the range
  expect([...withRanges.result.altered.keys()]).toEqual(["far"]);
  const oneId = await plan(entries, { maps: single });
  expect(oneId.records[0]).toMatchObject({ flags: 0, mode: 0o755 });
  expect(oneId.result.altered.get("suid")).toEqual({ uid: 33, gid: 33, mode: 0o4755 });
});

test("xattrs: user.* and file capabilities kept, overlay's own and the rest left out", async () => {
  const xattrs = { "user.a": enc.encode("1"), "security.capability": new Uint8Array([1]), "user.overlay.opaque": enc.encode("y"), "trusted.x": enc.encode("t") };
  const { records, result, stream } = await plan([[{ path: "f", xattrs }, "data"]]);
  expect(records.filter((r) => r.type === U.XATTR).map((r) => r.link)).toEqual(["security.capability", "user.a"]);
  expect(result.xattrsSkipped).toBe(2);
  // the file's data follows its record; each kept xattr's value follows its own
  expect(stream.slice(0, 6)).toEqual([`record ${U.FILE}`, "data", `record ${U.XATTR}`, "\x01", `record ${U.XATTR}`, "1"]);
  // a file of an owner the map cannot hold keeps its user.* ones, but not a capability, which was its owner's
  const unowned = await plan([[{ path: "f", uid: 33, gid: 33, xattrs }, "data"]], { maps: single });
  expect(unowned.records.filter((r) => r.type === U.XATTR).map((r) => r.link)).toEqual(["user.a"]);
  expect(unowned.result.xattrsSkipped).toBe(3);
});

test("a symlink with no target, or one longer than a path may be, is refused", async () => {
  await expect(plan([[{ type: "symlink", path: "l", linkname: "" }]])).rejects.toThrow('refusing symbolic link "l": a bad target');
  await expect(plan([[{ type: "symlink", path: "l", linkname: "x".repeat(4096) }]])).rejects.toThrow('refusing symbolic link "l": a bad target');
  expect((await plan([[{ type: "symlink", path: "l", linkname: "x".repeat(4095) }]])).records[0]).toMatchObject({ type: U.SYMLINK });
});

test("later entries replace earlier ones; a directory replaced by a file loses its contents first", async () => {
  const { records } = await plan([[{ type: "dir", path: "d" }], [{ path: "d/x" }, "1"], [{ path: "d" }, "now a file"]]);
  expect(records.filter((r) => r.type === U.UNLINK).map((r) => [r.path, r.flags])).toEqual([
    ["d/x", 0],
    ["d", 2],
  ]);
});

test("entry and size caps stop archive bombs", async () => {
  await expect(plan([[{ path: "a" }, "1"], [{ path: "b" }, "2"]], { maxEntries: 1 })).rejects.toThrow("more than 1 entries");
  await expect(plan([[{ path: "a" }, "12345"]], { maxBytes: 4 })).rejects.toThrow("more than 4 bytes");
});

test("a record's header round-trips: large ids and sizes, a negative mtime with a fraction", () => {
  const r: Record_ = { type: U.FILE, flags: 1, path: "a/ü", link: "t", mode: 0o104755, uid: 4294967295, gid: 65534, mtime: -1.25, size: 2 ** 40 + 7 };
  const bytes = encodeRecord(r);
  const { pathLen, linkLen, record } = decodeRecordHead(bytes);
  expect([pathLen, linkLen]).toEqual([4, 1]);
  expect(record).toEqual({ type: U.FILE, flags: 1, mode: 0o104755, uid: 4294967295, gid: 65534, mtime: -1.25, size: 2 ** 40 + 7 });
  expect(new TextDecoder().decode(bytes.subarray(40))).toBe("a/üt");
});

test("files whose digest is wanted are hashed by the stage, and their digests asked for in batches it can hold", async () => {
  const n = DIGEST_BATCH + 10;
  const digests: FileDigest[] = [];
  async function* entries(): AsyncGenerator<TarEntry> {
    const header = (path: string, type: TarHeader["type"] = "file") =>
      ({ path, type, mode: 0o644, uid: 0, gid: 0, mtime: 1, size: type === "file" ? 1 : 0, linkname: "" }) as TarHeader;
    const data = async function* () {
      yield enc.encode("x");
    };
    yield { header: header("d", "dir"), data, digest: {} }; // not a file: nothing to hash
    yield { header: header("plain"), data }; // no digest wanted
    for (let i = 0; i < n; i++) {
      const digest: FileDigest = {};
      digests.push(digest);
      yield { header: header(`d/${i}`), data, digest };
    }
  }
  const stream: string[] = [];
  let hashed = 0; // files flagged since the last U_DIGESTS
  const result = await planUnpack(
    entries(),
    { uidMappings: ranges, gidMappings: ranges, layer: false, maxEntries: n + 10, maxBytes: 1e9, hash: true },
    {
      record: (r) => {
        if (r.type === U.FILE && r.flags & 0x4) hashed++;
        if (r.type === U.DIGESTS || r.type === U.END) stream.push(`${r.type === U.END ? "end" : "digests"} after ${hashed}`);
        if (r.type === U.DIGESTS) expect(hashed).toBeLessThanOrEqual(DIGEST_BATCH);
        if (r.type !== U.FILE) return;
        expect(Boolean(r.flags & 0x4)).toBe(r.path !== "plain");
      },
      data: () => {},
      digests: (count) => {
        const out = Array.from({ length: count }, (_, i) => `${hashed - count + i}`.padStart(64, "0"));
        hashed = 0;
        return out;
      },
    },
  );
  // one batch when it is full, the rest before the end, each digest to its own file
  expect(stream).toEqual([`digests after ${DIGEST_BATCH}`, "digests after 10", "end after 0"]);
  expect(digests.every((d) => d.byUnpacker)).toBe(true);
  expect(digests[0]!.sha256).toBe("0".padStart(64, "0"));
  expect(digests[DIGEST_BATCH]!.sha256).toBe("0".padStart(64, "0"));
  expect(digests[n - 1]!.sha256).toBe("9".padStart(64, "0"));
  expect(digests[DIGEST_BATCH - 1]!.sha256).toBe(`${DIGEST_BATCH - 1}`.padStart(64, "0"));
  expect(result.hashed).toEqual([]);
  // without opts.hash, nothing is flagged and nothing asked
  const { records } = await plan([[{ path: "f" }, "x"]]);
  expect(records.filter((r) => r.flags & 0x4 || r.type === U.DIGESTS)).toEqual([]);
});

test("whiteouts that name no file, or go through a symlink, are refused; an opaque root records nothing", async () => {
  for (const p of [".wh.", "a/.wh.", "a/.wh..", "a/.wh..."]) await expect(plan([[{ path: p }, ""]], { layer: true }), p).rejects.toThrow("it names no file");
  for (const p of ["l/.wh.passwd", "l/.wh..wh..opq"]) {
    // named as the archive has it
    await expect(plan([[{ type: "symlink", path: "l", linkname: "/etc" }], [{ path: p }, ""]], { layer: true }), p).rejects.toThrow(`refusing "${p}": it would be written through the symbolic link "l"`);
  }
  expect((await plan([[{ path: ".wh..wh..opq" }, ""]], { layer: true })).records.map((r) => r.type)).toEqual([U.END]);
});

test("setuid and setgid are stripped where the map does not hold the owner", async () => {
  const { records, result } = await plan([[{ path: "far", uid: 200000, gid: 0, mode: 0o6755 }, "x"]]);
  expect(records[0]).toMatchObject({ type: U.FILE, flags: 0, mode: 0o755 });
  expect(result.altered.get("far")).toEqual({ uid: 200000, gid: 0, mode: 0o6755 });
});

test("any later entry removes a symlink, FIFO or file at its path first", async () => {
  for (const type of ["symlink", "fifo", "file"] as const) {
    const { records } = await plan([[{ type, path: "p", linkname: type === "symlink" ? "/tmp" : "" }], [{ type: "dir", path: "p" }]]);
    expect(records.slice(1, 3).map((r) => [r.type, r.path]), type).toEqual([[U.UNLINK, "p"], [U.DIR, "p"]]);
  }
});

test("a hard link to a symlink is a symlink to later entries", async () => {
  await expect(plan([[{ type: "symlink", path: "s", linkname: "/etc" }], [{ type: "hardlink", path: "h", linkname: "s" }], [{ path: "h/passwd" }, "x"]])).rejects.toThrow('through the symbolic link "h"');
});

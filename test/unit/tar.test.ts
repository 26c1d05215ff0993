import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ByteReader, collect } from "../../src/image/bytes.ts";
import { encodeHeader, readTar, TarError, type TarHeader } from "../../src/image/tar.ts";
import { chunked, reusing } from "../helpers/chunks.ts";
import { archive, header as h } from "../helpers/tar.ts";

const enc = new TextEncoder();

async function entries(b: Uint8Array, chunk = 100000) {
  const out: { header: TarHeader; data: string }[] = [];
  for await (const e of readTar(chunked(b, chunk))) out.push({ header: e.header, data: new TextDecoder().decode(await collect(e.data())) });
  return out;
}

const longName = `${"d".repeat(120)}/${"n".repeat(150)}`;
const xattrs = { "user.a": enc.encode("1"), "security.capability": new Uint8Array([1, 0, 0, 2, 255]) };
const sample: [TarHeader, Uint8Array?][] = [
  [h({ type: "dir", path: "etc", mode: 0o755 })],
  [h({ path: "etc/passwd", size: 5, uid: 33, gid: 33, mode: 0o4755 }), enc.encode("hello")],
  [h({ path: longName, size: 3, xattrs }), enc.encode("abc")],
  [h({ type: "symlink", path: "link", linkname: "l".repeat(300) })],
  [h({ type: "hardlink", path: "hard", linkname: "etc/passwd" })],
  [h({ path: "big-ids", uid: 3_000_000, gid: 70_000_000, mtime: 1700000000.5 })],
  [h({ type: "char", path: "dev/null", devmajor: 1, devminor: 3 })],
  [h({ path: "ünïcödé ✓", size: 1 }), enc.encode("x")],
];

test("round trip: PAX long names and links, xattrs, big ids, fractional times, hard links, devices", async () => {
  for (const chunk of [1, 7, 512, 100000]) {
    const got = await entries(archive(sample), chunk);
    expect(got.map((e) => e.header.path)).toEqual(sample.map(([hd]) => hd.path));
    expect(got[1]!.data).toBe("hello");
    expect(got[1]!.header).toMatchObject({ uid: 33, gid: 33, mode: 0o4755, size: 5 });
    expect(got[2]!.header.xattrs).toEqual(xattrs);
    expect(got[2]!.data).toBe("abc");
    expect(got[3]!.header.linkname).toBe("l".repeat(300));
    expect(got[4]!.header).toMatchObject({ type: "hardlink", linkname: "etc/passwd" });
    expect(got[5]!.header).toMatchObject({ uid: 3_000_000, gid: 70_000_000, mtime: 1700000000.5 });
    expect(got[6]!.header).toMatchObject({ type: "char", devmajor: 1, devminor: 3 });
    expect(got[7]!.data).toBe("x");
  }
});

test("GNU tar reads what we write, and we read what GNU tar writes", async () => {
  const dir = mkdtempSync("/tmp/bunker-tar-");
  try {
    const file = join(dir, "a.tar");
    writeFileSync(file, archive(sample.filter(([hd]) => hd.type !== "char")));
    const listed = Bun.spawnSync(["tar", "--numeric-owner", "-tvf", file]);
    expect(listed.stderr.toString()).toBe(""); // a bad checksum or number field is a complaint
    expect(listed.exitCode).toBe(0);
    const list = listed.stdout.toString();
    expect(list).toContain(longName);
    expect(list).toContain("33/33");
    expect(list).toContain("3000000/70000000");
    // GNU tar's own long names (--format=gnu uses 'L' records) and PAX
    const src = join(dir, "src");
    Bun.spawnSync(["mkdir", "-p", join(src, "d".repeat(120))]);
    writeFileSync(join(src, "d".repeat(120), "n".repeat(150)), "gnu");
    for (const format of ["gnu", "posix", "ustar"]) {
      const out = join(dir, `${format}.tar`);
      const made = Bun.spawnSync(["tar", `--format=${format}`, "-C", src, "-cf", out, "."]);
      if (format === "ustar") {
        expect(made.exitCode).not.toBe(0); // ustar cannot hold that name; GNU tar says so
        continue;
      }
      const got = await entries(new Uint8Array(await Bun.file(out).arrayBuffer()));
      const file = got.find((e) => e.header.path.endsWith("n".repeat(150)))!;
      expect(file.header.path).toBe(`./${"d".repeat(120)}/${"n".repeat(150)}`);
      expect(file.data).toBe("gnu");
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a plain entry's header is byte for byte the one GNU tar writes (ustar)", async () => {
  const dir = mkdtempSync("/tmp/bunker-tar-");
  try {
    writeFileSync(join(dir, "f"), "hello\n");
    Bun.spawnSync(["chmod", "4755", join(dir, "f")]);
    Bun.spawnSync(["touch", "-d", "@1700000000", join(dir, "f")]);
    const made = Bun.spawnSync(["tar", "--format=ustar", "--owner=33", "--group=33", "--numeric-owner", "-C", dir, "-cf", "-", "f"]);
    expect(made.exitCode).toBe(0);
    const gnu = new Uint8Array(made.stdout.buffer, made.stdout.byteOffset, 512);
    const [e] = await entries(new Uint8Array(made.stdout));
    expect(e!.header).toMatchObject({ path: "f", mode: 0o4755, uid: 33, gid: 33, size: 6, mtime: 1700000000 });
    expect(Buffer.from(encodeHeader(e!.header)).equals(gnu)).toBe(true); // octal fields, checksum "NNNNNN\0 ", magic
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a corrupt or truncated stream is an error that says so", async () => {
  const a = archive(sample);
  await expect(entries(a.subarray(0, 700))).rejects.toThrow("ends");
  const corrupt = archive([[h({ path: "x", size: 1 }), enc.encode("1")]]);
  corrupt[10] ^= 1;
  await expect(entries(corrupt)).rejects.toThrow("bad header checksum");
  await expect(entries(enc.encode("this is not a tar archive at all".repeat(20)))).rejects.toThrow("bad header checksum");
  await expect(entries(new Uint8Array(0))).resolves.toEqual([]);
});

test("an extended header followed by the end of the archive is refused; one cut short is truncated", async () => {
  const pax = encodeHeader({ ...h({ path: `${"p".repeat(120)}/f` }), size: 0 }); // a long name: a PAX header, then the entry's
  const paxOnly = pax.subarray(0, pax.length - 512); // the extended header and its record, without the entry
  await expect(entries(new Uint8Array([...paxOnly, ...new Uint8Array(1024)]))).rejects.toThrow("an extended header is followed by the end of the archive");
  await expect(entries(paxOnly)).rejects.toThrow("the stream ends after an extended header");
});

test("a checksum of signed bytes, as some old tars wrote, is accepted too", async () => {
  const a = archive([[h({ path: "é/ü", size: 1 }), enc.encode("1")]]);
  let signed = 0;
  for (let i = 0; i < 512; i++) signed += i >= 148 && i < 156 ? 32 : a[i]! > 127 ? a[i]! - 256 : a[i]!;
  a.set(enc.encode(`${signed.toString(8).padStart(6, "0")}\0 `), 148);
  expect((await entries(a)).map((e) => e.header.path)).toEqual(["é/ü"]);
  a[149] ^= 1; // neither sum
  await expect(entries(a)).rejects.toThrow("bad header checksum");
});

test("sparse and multi-volume entries are refused by name", async () => {
  const b = archive([[h({ path: "s" })]]);
  b[156] = "S".charCodeAt(0);
  // fix the checksum after changing the type flag
  b.fill(32, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += b[i]!;
  b.set(enc.encode(`${sum.toString(8).padStart(6, "0")}\0 `), 148);
  await expect(entries(b)).rejects.toThrow("unsupported tar entry type 'S'");
  // GNU tar's PAX sparse files (its names GNUSparseFile.N/...), as GNU tar writes them: refused by their own name
  const dir = mkdtempSync(join(tmpdir(), "sparse-"));
  try {
    writeFileSync(join(dir, "holes"), "");
    Bun.spawnSync(["sh", "-c", `cd ${dir} && truncate -s 10M holes && echo x >> holes && tar --sparse --format=posix -cf s.tar holes`]);
    const tar = new Uint8Array(await Bun.file(join(dir, "s.tar")).arrayBuffer());
    expect(new TextDecoder().decode(tar)).toContain("GNU.sparse.");
    await expect(entries(tar)).rejects.toThrow(`"holes" is a sparse file, which is not supported: archive it again without --sparse`);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("number fields: octal with spaces or NUL, empty as 0, base-256; anything else refused by name", async () => {
  /** One file entry with its mode field replaced, the checksum made right again. */
  const withMode = (field: number[]) => {
    const b = archive([[h({ path: "m" })]]);
    b.fill(0, 100, 108);
    b.set(field, 100);
    b.fill(32, 148, 156);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += b[i]!;
    b.set(enc.encode(`${sum.toString(8).padStart(6, "0")}\0 `), 148);
    return b;
  };
  const mode = async (text: string) => (await entries(withMode([...enc.encode(text)])))[0]!.header.mode;
  expect(await mode("0000755\0")).toBe(0o755);
  expect(await mode("   644  ")).toBe(0o644);
  expect(await mode("0000644")).toBe(0o644); // no terminator: the field's end
  expect(await mode("")).toBe(0);
  expect((await entries(withMode([0x80, 0, 0, 0, 0, 0, 0o1, 0o355])))[0]!.header.mode).toBe(0o755); // base-256
  await expect(entries(withMode([...enc.encode("0000855\0")]))).rejects.toThrow('mode is not an octal number: "0000855"');
  await expect(entries(withMode([...enc.encode("07 55\0")]))).rejects.toThrow("mode is not an octal number");
});

test("a reader that stops early ends its stream (a file closes, buffers go back); a ByteReader passed in stays open", async () => {
  const b = archive(sample);
  let ended = 0;
  async function* source() {
    try {
      yield* chunked(b, 64);
    } finally {
      ended++;
    }
  }
  for await (const e of readTar(source())) if (e.header.path === "etc/passwd") break;
  expect(ended).toBe(1);
  const r = new ByteReader(source());
  for await (const e of readTar(r)) if (e.header.path === "etc/passwd") break;
  expect(ended).toBe(1);
  await r.close();
  expect(ended).toBe(2);
});

test("an entry whose header is in the chunk at hand comes at once, not as a promise; its data too", async () => {
  const files = Array.from({ length: 50 }, (_, i): [TarHeader, Uint8Array] => [h({ path: `f${i}`, size: i * 10 }), enc.encode("x".repeat(i * 10))]);
  const tar = readTar(chunked(archive(files), 1 << 20));
  let promises = 0;
  const got: string[] = [];
  for (let i = 0; ; i++) {
    const next = tar.nextEntry();
    if (next instanceof Promise) promises++;
    const e = await next;
    if (!e) break;
    if (i % 2) continue; // not read: passed over
    const data = e.readNow!();
    expect(data).toBeDefined();
    expect(() => e.data()).toThrow("read twice");
    got.push(new TextDecoder().decode(data));
  }
  // the first entry waits for the first chunk, the end for the stream's end
  expect(promises).toBe(2);
  expect(got).toEqual(files.filter((_, i) => i % 2 === 0).map(([, d]) => new TextDecoder().decode(d)));
});

test("data that runs past the chunk at hand is not there at once: it streams", async () => {
  const data = enc.encode("y".repeat(3000));
  const tar = readTar(chunked(archive([[h({ path: "a", size: 3000 }), data], [h({ path: "b", size: 1 }), enc.encode("z")]]), 1024));
  const a = (await tar.nextEntry())!;
  expect(a.readNow!()).toBeUndefined();
  expect(new TextDecoder().decode(await collect(a.data()))).toBe("y".repeat(3000));
  expect(a.readNow!()).toBeUndefined(); // begun as a stream: not again at once
  const b = (await tar.nextEntry())!;
  expect(b.header.path).toBe("b");
  expect(await tar.nextEntry()).toBeNull();
});

/** A header block's type flag changed, its checksum made right again. */
function withFlag(b: Uint8Array, at: number, flag: string): Uint8Array {
  b[at + 156] = flag.charCodeAt(0);
  b.fill(32, at + 148, at + 156);
  let sum = 0;
  for (let i = at; i < at + 512; i++) sum += b[i]!;
  b.set(enc.encode(`${sum.toString(8).padStart(6, "0")}\0 `), at + 148);
  return b;
}
const text = (b: Uint8Array | undefined) => (b === undefined ? undefined : new TextDecoder().decode(b));

test("a bad checksum is refused on a header found in the chunk at hand too, not only on one read in", async () => {
  const a = archive([[h({ path: "a", size: 1 }), enc.encode("1")], [h({ path: "b", size: 1 }), enc.encode("2")]]);
  a[1024 + 10] ^= 1; // b's header, in the same chunk as a's
  for (const chunk of [100000, 2048]) {
    const paths = async (read: boolean) => {
      const out: string[] = [];
      for await (const e of readTar(chunked(a, chunk))) out.push(e.header.path), read && e.readNow!();
      return out;
    };
    await expect(paths(true)).rejects.toThrow("bad header checksum at byte 1024"); // a's data taken at once
    await expect(paths(false)).rejects.toThrow("bad header checksum at byte 1024"); // a's data passed over
  }
});

test("after a file read through data() whose size is a whole number of blocks comes the next entry, not the one after", async () => {
  const a = archive([[h({ path: "a", size: 512 }), new Uint8Array(512).fill(0x61)], [h({ path: "b" })], [h({ path: "c" })]]);
  for (const chunk of [100000, 1000, 512]) expect((await entries(a, chunk)).map((e) => e.header.path)).toEqual(["a", "b", "c"]);
});

test("readNow hands a file's bytes out once: again, it is undefined and the next entry is whole", async () => {
  const tar = readTar(chunked(archive([[h({ path: "a", size: 3 }), enc.encode("abc")], [h({ path: "b", size: 3 }), enc.encode("xyz")]]), 1 << 20));
  const a = (await tar.nextEntry())!;
  expect(text(a.readNow!())).toBe("abc");
  expect(a.readNow!()).toBeUndefined();
  const b = (await tar.nextEntry())!;
  expect(b.header.path).toBe("b");
  expect(text(b.readNow!())).toBe("xyz");
  expect(await tar.nextEntry()).toBeNull();
});

test("a PAX or GNU long-name record over 1 MiB is refused by its size, before it is read", async () => {
  for (const flag of ["x", "g", "L", "K"]) {
    const a = withFlag(archive([[h({ path: "p", size: 2 << 20 })]]), 0, flag); // no data follows: it is not read
    await expect(entries(a)).rejects.toThrow(new TarError(`${flag === "x" ? "PAX" : flag === "g" ? "PAX global" : "GNU long name"} record of 2097152 bytes is too large`));
  }
});

test("PAX values an entry keeps (xattrs) are its own, not views of a source's reused buffers", async () => {
  const xattrs = { "user.a": enc.encode("value-a"), "user.b": enc.encode("value-b") };
  const a = archive([[h({ path: "x", size: 1, xattrs }), enc.encode("1")], [h({ path: "y", size: 10000 }), enc.encode("z".repeat(10000))]]);
  for (const size of [256, 1024, 4096]) {
    const kept: TarHeader[] = [];
    for await (const e of readTar(reusing(a, size))) kept.push(e.header), await collect(e.data());
    expect(kept[0]!.xattrs).toEqual(xattrs);
  }
});

test("an extended header whose padding runs over several reused chunks is read as it was", async () => {
  const xattrs = { "user.a": enc.encode("1") };
  const a = archive([[h({ path: "f", size: 2, xattrs }), enc.encode("ok")], [h({ path: "l".repeat(150), size: 1 }), enc.encode("x")]]);
  for (const size of [16, 32, 64, 100, 128, 256, 512, 4096]) {
    const got: TarHeader[] = [];
    for await (const e of readTar(reusing(a, size))) got.push(e.header), await collect(e.data());
    expect(got.map((g) => g.path)).toEqual(["f", "l".repeat(150)]);
    expect(got[0]!.xattrs).toEqual(xattrs);
  }
});

test("a file's data left part-read (its stream closed early) is passed over all the same: a tar inside it stays inside", async () => {
  const inner = archive([[h({ path: "smuggled", size: 1 }), enc.encode("!")]]);
  const body = Buffer.concat([new Uint8Array(512).fill(0x61), inner]); // a tar in a file, at a block boundary
  const a = archive([[h({ path: "a", size: body.length }), body], [h({ path: "b", size: 1 }), enc.encode("b")]]);
  for (const chunk of [512, 1000, 100000]) {
    const paths: string[] = [];
    for await (const e of readTar(chunked(a, chunk))) {
      paths.push(e.header.path);
      for await (const _ of e.data()) break; // one chunk is enough (a type sniffed, a size limit hit)
    }
    expect(paths).toEqual(["a", "b"]);
  }
});

test("a name or link with a NUL in it (PAX) is refused: C would end it there ('..\\0y' is '..')", async () => {
  await expect(entries(archive([[h({ type: "dir", path: `..\0${"y".repeat(120)}`, mode: 0o777 })]]))).rejects.toThrow("NUL");
  await expect(entries(archive([[h({ type: "hardlink", path: "h", linkname: `..\0${"y".repeat(120)}` })]]))).rejects.toThrow("NUL");
});

test("an entry's data asked for after the next entry is not the next entry's", async () => {
  const tar = readTar(chunked(archive([[h({ path: "a", size: 3 }), enc.encode("aaa")], [h({ path: "b", size: 3 }), enc.encode("bbb")]]), 1 << 20));
  const a = (await tar.nextEntry())!;
  const b = (await tar.nextEntry())!;
  expect(a.readNow!()).toBeUndefined();
  expect(() => a.data()).toThrow("tar entry data read after the next entry");
  expect(text(b.readNow!())).toBe("bbb");
});

test("PAX records with more keys than any archive needs are refused, one record or global ones together", async () => {
  const pax = (n: number, from = 0) => {
    let out = "";
    for (let i = from; i < from + n; i++) {
      const body = ` k${i}=v\n`;
      let len = body.length + 1;
      while (`${len}${body}`.length !== len) len++;
      out += `${len}${body}`;
    }
    return enc.encode(out);
  };
  const record = (flag: string, data: Uint8Array) => withFlag(archive([[h({ path: "p", size: data.length }), data]]).subarray(0, -1024), 0, flag);
  const file = archive([[h({ path: "f", size: 1 }), enc.encode("1")]]);
  await expect(entries(Buffer.concat([record("x", pax(1001)), file]))).rejects.toThrow("a PAX record with more than 1000 keys");
  await expect(entries(Buffer.concat([record("g", pax(600)), record("g", pax(600, 600)), file]))).rejects.toThrow("PAX global records with more than 1000 keys");
  expect((await entries(Buffer.concat([record("g", pax(600)), record("x", pax(400, 600)), file]))).map((e) => e.header.path)).toEqual(["f"]);
});

test("names and link targets that are not UTF-8 round-trip byte for byte, short ones in ustar, long ones in PAX", async () => {
  const latin = "caf\udce9"; // Latin-1 "café", as src/image/names.ts decodes it
  const long = `${"d".repeat(120)}/${latin}`;
  const tar = archive([
    [h({ path: latin, size: 1 }), enc.encode("a")],
    [h({ path: "caf\ufffd", size: 1 }), enc.encode("b")],
    [h({ path: long, size: 1 }), enc.encode("c")],
    [h({ type: "symlink", path: "ln", linkname: `${"t".repeat(120)}/${latin}` })],
  ]);
  // the raw bytes are in the archive: 0xe9 after "caf" in the ustar name field
  expect(tar.subarray(0, 5)).toEqual(Uint8Array.from([0x63, 0x61, 0x66, 0xe9, 0]));
  expect(Buffer.from(tar).includes(Buffer.from(` path=${"d".repeat(120)}/caf\xe9\n`, "latin1"))).toBe(true);
  const got = await entries(tar, 37);
  expect(got.map((e) => [e.header.path, e.header.linkname, e.data])).toEqual([
    [latin, "", "a"],
    ["caf\ufffd", "", "b"],
    [long, "", "c"],
    ["ln", `${"t".repeat(120)}/${latin}`, ""],
  ]);
});

test("GNU long names and links, ustar prefixes and PAX xattr names that are not UTF-8 come through byte for byte", async () => {
  const latin = Uint8Array.from([0x63, 0x61, 0x66, 0xe9]); // Latin-1 "café"
  const dir = "d".repeat(120);
  const long = Buffer.concat([Buffer.from(`${dir}/`), latin]);
  const body = (b: Uint8Array) => b.subarray(0, -1024); // without the end-of-archive blocks
  const gnu = (flag: string, data: Uint8Array) => withFlag(body(archive([[h({ path: "././@LongLink", size: data.length }), data]])), 0, flag);
  // GNU tar's default format: an 'L' record names the next entry, a 'K' record gives its link
  const file = body(archive([[h({ path: "short", size: 1 }), enc.encode("1")]]));
  const link = body(archive([[h({ type: "symlink", path: "ln", linkname: "x" })]]));
  // a POSIX ustar name split into prefix and name (Python's tarfile, for one)
  const split = body(archive([[h({ path: "name", size: 0 })]]));
  split.set(latin, 345);
  withFlag(split, 0, "0");
  // an xattr whose name is not UTF-8, written and read back
  const xattr = body(archive([[h({ path: "x", xattrs: { "user.k\udce9": enc.encode("v") } })]]));
  expect(Buffer.from(xattr).includes(Buffer.from([0x6b, 0xe9, 0x3d]))).toBe(true); // "k\xe9=" in the PAX record
  const got = await entries(Buffer.concat([gnu("L", long), file, gnu("K", long), link, split, xattr, new Uint8Array(1024)]));
  expect(got.map((e) => [e.header.path, e.header.linkname])).toEqual([
    [`${dir}/caf\udce9`, ""],
    ["ln", `${dir}/caf\udce9`],
    ["caf\udce9/name", ""],
    ["x", ""],
  ]);
  expect(got[3]!.header.xattrs).toEqual({ "user.k\udce9": enc.encode("v") });
});

// Every archive is hostile until proven otherwise: each bad input gets a
// clear one-line message, exit 125, and leaves no image and no debris.
// The C unpacker is also checked on its own, fed records that the
// TypeScript policy would never send.
import { describe, expect, test } from "bun:test";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { encodeRecord, type Record_, U } from "../../src/image/unpack.ts";
import { compileUnpack } from "../../src/linux/compile.ts";
import { spawnStage } from "../../src/linux/stage.ts";
import * as sys from "../../src/linux/sys.ts";
import { archive as archiveOf, header, tarOf } from "../helpers/tar.ts";
import { asRoot, asUser, setup } from "./harness.ts";
import { freshStore, inStore, noDebris, rootfsDir, tarOf as tarOfDir, workdir } from "./store.ts";

const h = setup();

function file(w: string, name: string, bytes: Uint8Array | string): string {
  const p = join(w, name);
  writeFileSync(p, bytes);
  chmodSync(p, 0o644);
  return p;
}

const hash = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");

/** A docker archive (docker save's names) of one image: layer blobs as given, and a config that names their content digests. */
function dockerArchive(blobs: Uint8Array[], tag: string, diffIds = blobs.map((b) => `sha256:${hash(b)}`)): Uint8Array {
  const enc = new TextEncoder();
  const config = enc.encode(JSON.stringify({ architecture: "amd64", os: "linux", config: {}, rootfs: { type: "layers", diff_ids: diffIds } }));
  const manifest = enc.encode(JSON.stringify([{ Config: `${hash(config)}.json`, RepoTags: [tag], Layers: blobs.map((_, i) => `${i}/layer.tar`) }]));
  const members: [ReturnType<typeof header>, Uint8Array][] = [[header({ path: `${hash(config)}.json`, size: config.length }), config]];
  blobs.forEach((b, i) => members.push([header({ path: `${i}/layer.tar`, size: b.length }), b]));
  members.push([header({ path: "manifest.json", size: manifest.length }), manifest]);
  return archiveOf(members);
}

describe("bunker import refuses hostile and broken input", () => {
  const w = workdir();
  const cases: [string, string, RegExp][] = [
    ["path traversal", file(w, "trav.tar", tarOf([[{ path: "../../etc/evil" }, "x"]])), /climbs out of the root/],
    ["an absolute path", file(w, "abs.tar", tarOf([[{ path: "/etc/evil" }, "x"]])), /an absolute path/],
    ["a write through a symlink", file(w, "sym.tar", tarOf([[{ type: "symlink", path: "l", linkname: "/tmp" }], [{ path: "l/evil" }, "x"]])), /through the symbolic link "l"/],
    [
      "a relative symlink chain",
      file(w, "chain.tar", tarOf([[{ type: "symlink", path: "a", linkname: "." }], [{ type: "symlink", path: "b", linkname: "a/a/.." }], [{ path: "b/evil" }, "x"]])),
      /through the symbolic link "b"/,
    ],
    [
      "a directory replaced by a symlink",
      file(w, "dirsym.tar", tarOf([[{ type: "dir", path: "d" }], [{ type: "symlink", path: "d", linkname: "/tmp" }], [{ path: "d/x" }, "x"]])),
      /through the symbolic link "d"/,
    ],
    ["a hard link out of the root", file(w, "hard.tar", tarOf([[{ type: "hardlink", path: "h", linkname: "../../../etc/passwd" }]])), /climbs out/],
    // a name that would print a line of its own, or move the cursor: shown escaped, on the one line
    ["a name with a newline and an escape in it", file(w, "nl.tar", tarOf([[{ path: "../\nbunker: imported fine\x1b[2K" }, "x"]])), /"\.\.\/\\nbunker: imported fine\\x1b\[2K": it climbs out/],
    // C would end the name at the NUL, and read ".." (a PAX path, as it is long)
    ["a NUL in a name", file(w, "nul.tar", tarOf([[{ type: "dir", path: `..\0${"y".repeat(120)}`, mode: 0o777 }]])), /a name with a NUL in it/],
    ["a truncated stream", file(w, "trunc.tar", tarOf([[{ path: "big" }, "y".repeat(5000)]]).subarray(0, 2000)), /ends/],
    ["a file that is not an archive", file(w, "text.tar", "just some text\n".repeat(100)), /not a tar archive/],
    ["an empty file", file(w, "empty.tar", ""), /is empty: not an archive/],
    ["a text file shorter than a tar header", file(w, "short.txt", "hi\n"), /short\.txt: not a tar archive \(3 bytes, less than one 512-byte header\)$/m],
    ["an image of no layers", file(w, "nolayers.tar", dockerArchive([], "none:1")), /lists no layers: the image has no file system to run/],
    ["a layer shorter than any archive", file(w, "tiny-layer.tar", dockerArchive([new TextEncoder().encode("hello")], "tiny:1")), /a layer is shorter than 6 bytes: not an archive/],
  ];
  // corrupt gzip: a real gzip stream with its middle damaged
  const gz = Bun.gzipSync(tarOf([[{ path: "f" }, "z".repeat(20000)]]) as Uint8Array<ArrayBuffer>);
  gz[Math.floor(gz.length / 2)] ^= 0xff;
  cases.push(["a corrupt gzip stream", file(w, "corrupt.tar.gz", gz), /corrupt|truncated|checksum|invalid/i]);
  cases.push(["an empty gzip stream", file(w, "empty.tar.gz", Bun.gzipSync(new Uint8Array(0))), /is gzip-compressed nothing: not an archive/]);
  cases.push(["an xz file", file(w, "x.tar.xz", new Uint8Array([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1, 2, 3])), /xz-compressed, which bunker does not read/]);

  for (const [what, path, message] of cases) {
    test(`${what}`, () => {
      const { env, dir } = freshStore();
      const r = inStore(env, ["import", path, "--name", "evil"]);
      expect(r.code).toBe(125);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toStartWith("bunker: ");
      noDebris(dir);
    });
  }

  test("an input the user cannot read is one line naming it, and leaves nothing", () => {
    const w = workdir();
    const secret = file(w, "secret.tar", tarOf([[{ path: "f" }, "x"]]));
    const layout = join(w, "layout");
    mkdirSync(layout);
    chmodSync(layout, 0o755);
    file(layout, "oci-layout", '{"imageLayoutVersion":"1.0.0"}');
    const index = file(layout, "index.json", '{"schemaVersion":2,"manifests":[]}');
    for (const f of [secret, index]) chmodSync(f, 0o000);
    for (const [input, message] of [
      [secret, `bunker: cannot read ${secret}: permission denied`],
      [layout, `bunker: open ${index}: permission denied`],
    ]) {
      const { env, dir } = freshStore();
      const r = inStore(env, ["import", input!]);
      expect(r.code).toBe(125);
      expect(r.stderr).toBe(`${message}\n`);
      noDebris(dir);
    }
  });

  test("device nodes are skipped with one notice, and the rest imports", () => {
    const tar = file(w, "dev.tar", tarOf([[{ type: "char", path: "dev/console", devmajor: 5, devminor: 1 }], [{ type: "block", path: "dev/sda", devmajor: 8, devminor: 0 }], [{ path: "bin/ok" }, "ok"]]));
    const { env } = freshStore();
    const r = inStore(env, ["import", tar, "--name", "devs"]);
    expect(r.code).toBe(0);
    expect(r.stderr.trim()).toBe("bunker: 2 device nodes left out: a rootless container cannot create them (the runtime provides /dev)");
  });

  test("a killed import leaves debris that the next command clears", async () => {
    // a big archive, and a kill -9 while it is being unpacked
    const big = file(w, "big.tar", tarOf(Array.from({ length: 400 }, (_, i) => [{ path: `f${i}` }, "x".repeat(100_000)])));
    const { env, dir } = freshStore();
    const p = Bun.spawn(asUser([h.bin, "import", big, "--name", "big"], { env }), { stdout: "pipe", stderr: "pipe" });
    for (let i = 0; i < 200 && !(existsSync(join(dir, "bunker/tmp")) && readdirSync(join(dir, "bunker/tmp")).length); i++) await Bun.sleep(10);
    await Bun.sleep(50);
    p.kill("SIGKILL");
    await p.exited;
    expect(readdirSync(join(dir, "bunker/tmp")).length).toBe(1);
    // the next command that uses the store, whatever it is, sweeps the staging directory of the killed one
    expect(JSON.parse(inStore(env, ["images", "--json"]).stdout)).toEqual([]);
    expect(readdirSync(join(dir, "bunker/tmp"))).toEqual([]);
    expect(inStore(env, ["import", file(w, "small.tar", tarOf([[{ path: "a" }, "a"]])), "--name", "small"]).code).toBe(0);
    expect(readdirSync(join(dir, "bunker/tmp"))).toEqual([]);
  });

  test("a layer a killed import put in place, which no image uses, goes with the next command; while the import lives, its layers stay", async () => {
    // a docker archive of a small layer, then a large one: the first is in place while the second unpacks
    const small = tarOf([[{ path: "a" }, "a"]]);
    const large = tarOf(Array.from({ length: 400 }, (_, i) => [{ path: `f${i}` }, "x".repeat(100_000)]));
    const archive = file(w, "two-layers.tar", dockerArchive([small, large], "two:1"));
    const { env, dir } = freshStore();
    const layers = () => (existsSync(join(dir, "bunker/layers")) ? readdirSync(join(dir, "bunker/layers")) : []);
    const started = async () => {
      const p = Bun.spawn(asUser([h.bin, "import", archive], { env }), { stdout: "pipe", stderr: "pipe" });
      for (let i = 0; i < 500 && !layers().length; i++) await Bun.sleep(5);
      return p;
    };
    // a command meanwhile leaves the first layer to the import, which ends with an image of both
    const live = await started();
    expect(layers()).toEqual([hash(small)]);
    expect(JSON.parse(inStore(env, ["images", "--json"]).stdout)).toEqual([]);
    expect(layers()).toEqual([hash(small)]);
    expect(await live.exited).toBe(0);
    expect(layers().sort()).toEqual([hash(small), hash(large)].sort());
    expect(inStore(env, ["rmi", "two:1"]).code).toBe(0);
    expect(layers()).toEqual([]);
    // killed while the second layer unpacks: the first stays in place, no image uses it, and the next command takes it
    const killed = await started();
    killed.kill("SIGKILL");
    await killed.exited;
    expect(layers()).toEqual([hash(small)]);
    expect(JSON.parse(inStore(env, ["images", "--json"]).stdout)).toEqual([]);
    noDebris(dir);
  });

  test("an rmi of the last image using a layer spares it while an import holds it", async () => {
    const small = tarOf([[{ path: "a" }, "a"]]);
    const large = tarOf(Array.from({ length: 400 }, (_, i) => [{ path: `f${i}` }, "x".repeat(100_000)]));
    const { env, dir } = freshStore();
    expect(inStore(env, ["import", file(w, "one.tar", dockerArchive([small], "one:1"))]).code).toBe(0);
    // the import holds the layer "one" has (checking its blob), then unpacks the large one: meanwhile "one" goes
    const p = Bun.spawn(asUser([h.bin, "import", file(w, "both.tar", dockerArchive([small, large], "both:1"))], { env }), { stdout: "pipe", stderr: "pipe" });
    const tmp = join(dir, "bunker/tmp");
    const holds = () => readdirSync(tmp).some((d) => existsSync(join(tmp, d, "layers")) && readFileSync(join(tmp, d, "layers"), "utf8").includes(hash(small)));
    for (let i = 0; i < 500 && !holds(); i++) await Bun.sleep(5);
    expect(holds()).toBe(true);
    expect(inStore(env, ["rmi", "one:1"]).code).toBe(0);
    expect([await p.exited, await new Response(p.stderr).text()]).toEqual([0, ""]);
    expect(JSON.parse(inStore(env, ["images", "--json"]).stdout).map((i: { names: string[] }) => i.names)).toEqual([["both:1"]]);
    expect(readdirSync(join(dir, "bunker/layers")).sort()).toEqual([hash(small), hash(large)].sort());
  });

  test("a layer the store has already is checked all the same: another blob in its place is refused", () => {
    const layer = tarOf([[{ path: "bin/ok" }, "ok"]]);
    const docker = (name: string, blobs: Uint8Array[]) => file(w, `${name}.tar`, dockerArchive(blobs, `${name}:1`, blobs.map(() => `sha256:${hash(layer)}`)));
    const garbage = new TextEncoder().encode("not the layer at all");
    const { env, dir } = freshStore();
    // the same layer twice, the second time something else
    const twice = inStore(env, ["import", docker("twice", [layer, garbage])]);
    expect([twice.code, twice.stderr]).toEqual([125, expect.stringContaining(`not sha256:${hash(layer)} as the image config says: the archive is corrupt`)]);
    noDebris(dir);
    // in the store from an earlier import, then another archive with something else in its place
    expect(inStore(env, ["import", docker("good", [layer])]).code).toBe(0);
    const other = inStore(env, ["import", docker("other", [garbage])]);
    expect([other.code, other.stderr]).toEqual([125, expect.stringContaining("the archive is corrupt")]);
    expect(JSON.parse(inStore(env, ["images", "--json"]).stdout).map((i: { names: string[] }) => i.names)).toEqual([["good:1"]]);
  });

  test("each command that uses the store clears what a killed one left, whether it succeeds or not", () => {
    const { env, dir } = freshStore();
    expect(inStore(env, ["import", tarOfDir(rootfsDir(w), join(w, "one.tar")), "--name", "one"]).code).toBe(0);
    expect(inStore(env, ["run", "--name", "kept", "--network", "none", "one", "true"]).code).toBe(0);
    const debris = join(dir, "bunker/tmp/00000000deadbeef");
    for (const cmd of [["images"], ["rmi", "nosuch"], ["export", "nosuch", "-o", join(w, "x.bundle")], ["run", "--rm", "--network", "none", "one", "true"], ["rm", "kept"]]) {
      // what a killed import leaves: a staging directory whose lock no one holds
      expect(Bun.spawnSync(asUser(["sh", "-c", `mkdir -p ${debris}/layer/diff && : > ${debris}/lock`])).exitCode).toBe(0);
      inStore(env, cmd);
      expect([cmd[0], readdirSync(join(dir, "bunker/tmp"))]).toEqual([cmd[0], []]);
    }
  });

  test("a container's directory a killed run left without its record is cleared; a name it left is taken again", () => {
    const { env, dir } = freshStore();
    expect(inStore(env, ["import", tarOfDir(rootfsDir(w), join(w, "two.tar")), "--name", "two"]).code).toBe(0);
    // what a run killed while it made its container leaves: the directory, part made, and the name it claimed first
    const id = "ab".repeat(32);
    const made = Bun.spawnSync(asUser(["sh", "-c", `mkdir -p ${dir}/bunker/containers/${id}/upper ${dir}/bunker/containers/${id}/work && ln -s ${id} ${dir}/bunker/names/k`]));
    expect(made.exitCode).toBe(0);
    expect(JSON.parse(inStore(env, ["ps", "-a", "--json"]).stdout)).toEqual([]);
    expect(inStore(env, ["images"]).code).toBe(0);
    expect(readdirSync(join(dir, "bunker/containers"))).toEqual([]);
    expect(inStore(env, ["run", "--name", "k", "--network", "none", "two", "true"]).code).toBe(0);
    expect((JSON.parse(inStore(env, ["ps", "-a", "--json"]).stdout) as { name: string }[]).map((c) => c.name)).toEqual(["k"]);
  });

  test("commands that start together after a killed one all succeed, and one of them clears its debris", async () => {
    const { env, dir } = freshStore();
    expect(inStore(env, ["rmi", "nothing"]).code).toBe(125); // the store exists (listing makes none)
    // what a killed import leaves: a staging directory whose lock no one holds, with a few thousand files in it
    const debris = join(dir, "bunker/tmp/00000000deadbeef");
    const made = Bun.spawnSync(asUser(["sh", "-c", `mkdir -p ${debris}/layer/diff && cd ${debris} && : > lock && cd layer/diff && for d in $(seq 30); do mkdir $d && (cd $d && seq 100 | xargs touch); done`]));
    expect(made.exitCode).toBe(0);
    const all = Array.from({ length: 6 }, () => Bun.spawn(asUser([h.bin, "images", "--json"], { env }), { stdout: "pipe", stderr: "pipe" }));
    const results = await Promise.all(all.map(async (p) => [await p.exited, await new Response(p.stderr).text()]));
    expect(results).toEqual(all.map(() => [0, ""]));
    expect(readdirSync(join(dir, "bunker/tmp"))).toEqual([]);
  });
});

describe.skipIf(!asRoot)("a full disk", () => {
  test("ENOSPC is one clean error, and nothing half-written becomes visible", () => {
    const w = workdir();
    const big = file(w, "big.tar", tarOf(Array.from({ length: 40 }, (_, i) => [{ path: `f${i}` }, "x".repeat(100_000)])));
    const { env, dir } = freshStore();
    // a 1 MB store: the mount belongs to a private mount namespace, as does the whole import
    const cmd = asUser([h.bin, "import", big, "--name", "big"], { env }).map((a) => `'${a}'`).join(" ");
    const r = Bun.spawnSync(["unshare", "-m", "sh", "-c", `mount -t tmpfs -o size=1m,mode=700,uid=${h.main.uid},gid=${h.main.gid} none ${dir} && ${cmd}; code=$?; ls -A ${dir}/bunker/tmp ${dir}/bunker/layers; cat ${dir}/bunker/images.json 2>/dev/null; exit $code`], {
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(r.exitCode).toBe(125);
    expect(r.stderr.toString().trim()).toMatch(/^bunker: unpack f\d+: no space left on device \(free some space on that file system\)$/);
    // the listings of tmp/ and layers/ are empty, and there is no index
    expect(r.stdout.toString().trim().split("\n").filter((l) => l && !l.endsWith(":"))).toEqual([]);
  });
});

describe("an extended attribute larger than the file system holds", () => {
  test("is named as that, not as a full disk", () => {
    const w = workdir();
    const tar = file(w, "big-xattr.tar", archiveOf([[header({ path: "f", size: 1, xattrs: { "user.big": new Uint8Array(8000).fill(0x61) } }), new TextEncoder().encode("x")]]));
    const { env, dir } = freshStore();
    const r = inStore(env, ["import", tar]);
    // ext4 holds an xattr in its inode or one block: 8000 bytes do not fit in a 4 KiB block (tmpfs, xfs or btrfs take them)
    const ext4 = Bun.spawnSync(["stat", "-f", "-c", "%T", dir]).stdout.toString().trim() === "ext2/ext3";
    if (!ext4) return void expect(r.code).toBe(0);
    expect([r.code, r.stderr]).toEqual([125, "bunker: unpack f (its xattr user.big): the file system cannot hold an extended attribute this large (no space left on device)\n"]);
    noDebris(dir);
  });
});

describe.skipIf(!asRoot)("a full disk when an image is removed", () => {
  test("rmi that cannot write the index fails in one line, and leaves the image whole", () => {
    const w = workdir();
    const tar = tarOfDir(rootfsDir(w), join(w, "base.tar"));
    const { env, dir } = freshStore();
    const user = (args: string[]) => asUser([h.bin, ...args], { env }).map((a) => `'${a}'`).join(" ");
    // a 4 MB store, filled (blocks, not inodes) once the image is in: a layer can still be renamed, the index not written
    const script = [
      `mount -t tmpfs -o size=4m,mode=700,uid=${h.main.uid},gid=${h.main.gid} none ${dir}`,
      `${user(["import", tar, "--name", "base"])} >/dev/null`,
      `dd if=/dev/zero of=${dir}/filler bs=4k 2>/dev/null; ${user(["rmi", "base"])}; echo "rc=$?"`,
      `rm ${dir}/filler; ${user(["run", "--rm", "--network", "none", "base", "echo", "whole"])}`,
    ].join(" && ");
    const r = Bun.spawnSync(["unshare", "-m", "sh", "-c", script], { stdout: "pipe", stderr: "pipe" });
    expect(r.stderr.toString()).toMatch(/^bunker: [^\n]*images\.json[^\n]*: no space left on device \(free some space on that file system\)\n$/);
    expect(r.stdout.toString()).toBe("rc=125\nwhole\n");
  });
});

describe.skipIf(!asRoot)("a full disk when a container is made", () => {
  // every budget of inodes, for the store's containers/ and for the runtime's state, fails `run` at a
  // later step: each failure is one line that says so, and what is left is a whole container or nothing
  test("each step that fails leaves a whole container (as Docker's Created) or none, and never a stray record or name", () => {
    const w = workdir();
    const { env, dir } = freshStore();
    expect(inStore(env, ["import", tarOfDir(rootfsDir(w), join(w, "r.tar")), "--name", "img"]).code).toBe(0);
    const store = join(dir, "bunker");
    const own = `mode=700,uid=${h.main.uid},gid=${h.main.gid}`;
    const user = (args: string[]) => asUser([h.bin, ...args], { env }).map((a) => `'${a}'`).join(" ");
    const failures = new Set<string>();
    for (const [where, mountAt] of [["the store", join(store, "containers")], ["the runtime state", env.XDG_RUNTIME_DIR!]] as const) {
      for (let n = 3; ; n++) {
        // the run, and the listing with what is on disk, inside one private mount namespace with the small tmpfs
        // (which goes with it; `rm` is not tried: it moves a container aside into tmp/, on another file system here)
        const script = `mount -t tmpfs -o nr_inodes=${n},${own} none ${mountAt} && ${user(["run", "--network", "none", "--name", "c", "img", "true"])}; echo "rc=$?" >&2; ${user(["ps", "-a", "--json"])}; echo "$(ls -A ${join(store, "containers")})"; echo "$(ls -A ${join(store, "names")})"; rm -rf ${join(store, "containers")}/* ${join(store, "names")}/*`;
        const r = Bun.spawnSync(["unshare", "-m", "sh", "-c", script], { stdout: "pipe", stderr: "pipe" });
        const err = r.stderr.toString();
        const [ps, containers, names] = r.stdout.toString().split("\n");
        const listed = (JSON.parse(ps!) as { id: string; name: string }[]).map((c) => [c.id, c.name]);
        // what ps shows is what is on disk: a container with its record and name, or nothing at all
        expect([containers, names]).toEqual(listed.length ? [listed[0]![0], "c"] : ["", ""]);
        if (err.endsWith("rc=0\n")) break;
        expect([where, n, err]).toEqual([where, n, expect.stringMatching(/^bunker: [^\n]*(no space left on device|ENOSPC)[^\n]*\nrc=125\n$/i)]);
        expect(err).not.toContain("Linux 5.11"); // no hint about what the kernel lacks: the disk is full
        failures.add(err.split(":")[1]!);
        if (n > 40) throw new Error(`${where}: run still fails with ${n} inodes: ${err}`);
      }
    }
    // the budgets reach the record, the runtime's state, and the mounts of the stage
    expect(failures.size).toBeGreaterThan(3);
  });
});

describe("the C unpacker on its own never leaves its directory", () => {
  /** Feed raw records to ffi/unpack.c; return its result line. */
  async function unpackRaw(dir: string, records: (Record_ & { data?: string })[]): Promise<string> {
    const uid = process.getuid!();
    const gid = process.getgid!();
    const one = [{ containerID: 0, hostID: uid, size: 1 }];
    const stage = await spawnStage(compileUnpack(dir, { uidMappings: one, gidMappings: [{ containerID: 0, hostID: gid, size: 1 }] }, { uid, gid, helper: () => undefined }));
    try {
      for (const r of [...records, { type: U.END, flags: 0, path: "" }]) {
        const data = "data" in r && r.data ? new TextEncoder().encode(r.data) : undefined;
        sys.writeAll(stage.stdin, encodeRecord({ ...r, size: data?.length ?? r.size }));
        if (data) sys.writeAll(stage.stdin, data);
      }
    } catch {
      // it stopped reading after a failure: its result says which
    }
    sys.close(stage.stdin);
    const out = sys.readFd(stage.stdout, "the unpacker's result");
    await stage.proc.exited;
    return out.trim();
  }

  test("a symlink in the way, '..', and an absolute path all fail, and nothing appears outside", async () => {
    const base = mkdtempSync(join(h.dir, "raw-"));
    const dir = join(base, "root");
    const outside = join(base, "outside");
    mkdirSync(dir);
    mkdirSync(outside);
    symlinkSync(outside, join(dir, "l"));
    // ELOOP: a symlink component; EXDEV: ".." out of the directory; ENOENT: "/x" has an empty parent
    expect(await unpackRaw(dir, [{ type: U.FILE, flags: 0, path: "l/evil", mode: 0o644, data: "x" }])).toBe("fail 0 40");
    expect(await unpackRaw(dir, [{ type: U.FILE, flags: 0, path: "../outside/evil", mode: 0o644, data: "x" }])).toBe("fail 0 18");
    expect(await unpackRaw(dir, [{ type: U.HARDLINK, flags: 0, path: "h", link: "../outside/x" }])).toBe("fail 0 18");
    expect(await unpackRaw(dir, [{ type: U.SYMLINK, flags: 0, path: "l/s", link: "/" }])).toBe("fail 0 40");
    expect(readdirSync(outside)).toEqual([]);
    // EINVAL: a last component "..", or one that a NUL inside the name would make "..": the directory's parent keeps its mode
    const before = statSync(base).mode;
    expect(await unpackRaw(dir, [{ type: U.DIR, flags: 0, path: "..", mode: 0o777 }])).toBe("fail 0 22");
    expect(await unpackRaw(dir, [{ type: U.DIR, flags: 0, path: `..\0${"y".repeat(20)}`, mode: 0o777 }])).toBe("fail 0 22");
    expect(await unpackRaw(dir, [{ type: U.TIMES, flags: 0, path: ".." }])).toBe("fail 0 22");
    expect(await unpackRaw(dir, [{ type: U.HARDLINK, flags: 0, path: "h2", link: ".." }])).toBe("fail 0 22");
    expect(statSync(base).mode).toBe(before);
    // a NUL anywhere in a name or a link's target, though what comes before it would be harmless
    expect(await unpackRaw(dir, [{ type: U.FILE, flags: 0, path: "nul\0.x", mode: 0o644, data: "x" }])).toBe("fail 0 22");
    expect(await unpackRaw(dir, [{ type: U.SYMLINK, flags: 0, path: "nul-link", link: "t\0x" }])).toBe("fail 0 22");
    expect(existsSync(join(dir, "nul")) || existsSync(join(dir, "nul-link"))).toBe(false);
    // and good records work
    expect(await unpackRaw(dir, [{ type: U.DIR, flags: 0, path: "d", mode: 0o755 }, { type: U.FILE, flags: 0, path: "d/f", mode: 0o600, data: "ok" }])).toBe("ok 2");
    expect(Bun.file(join(dir, "d/f")).size).toBe(2);
  });
  test("a symlink as the last component is never followed", async () => {
    const base = mkdtempSync(join(h.dir, "raw-"));
    const dir = join(base, "root");
    const outside = join(base, "outside");
    mkdirSync(dir);
    mkdirSync(outside, 0o700);
    writeFileSync(join(outside, "f"), "secret", { mode: 0o600 });
    utimesSync(join(outside, "f"), 1000, 1000);
    utimesSync(outside, 1000, 1000);
    const state = () => [statSync(outside), statSync(join(outside, "f"))].map((s) => [s.mode, s.mtimeMs, s.nlink]);
    const was = state();
    symlinkSync(outside, join(dir, "d"));
    symlinkSync(join(outside, "f"), join(dir, "s"));
    expect(await unpackRaw(dir, [{ type: U.DIR, flags: 0, path: "d", mode: 0o777 }])).toBe("fail 0 20"); // ENOTDIR: O_DIRECTORY | O_NOFOLLOW on a symlink
    expect(await unpackRaw(dir, [{ type: U.FILE, flags: 0, path: "s", mode: 0o666, data: "pwned" }])).toBe("fail 0 17"); // EEXIST
    expect(await unpackRaw(dir, [{ type: U.XATTR, flags: 0, path: "s", link: "user.x", data: "1" }])).toBe("fail 0 40");
    expect(await unpackRaw(dir, [{ type: U.OPAQUE, flags: 0, path: "d" }])).toBe("fail 0 40");
    expect(await unpackRaw(dir, [{ type: U.TIMES, flags: 0, path: "d", mtime: 5 }])).toBe("ok 1"); // the link's own times
    expect(await unpackRaw(dir, [{ type: U.HARDLINK, flags: 0, path: "h", link: "s" }])).toBe("ok 1"); // a link to the link
    expect(lstatSync(join(dir, "h")).isSymbolicLink()).toBe(true);
    expect(state()).toEqual(was);
    expect(readFileSync(join(outside, "f"), "utf8")).toBe("secret");
  });

  test("an entry below the root is removed and made again", async () => {
    const dir = mkdtempSync(join(h.dir, "raw-"));
    const recs: (Record_ & { data?: string })[] = [
      { type: U.DIR, flags: 0, path: "r", mode: 0o755 },
      { type: U.DIR, flags: 0, path: "r/d", mode: 0o755 },
      { type: U.FILE, flags: 0, path: "r/d/f", mode: 0o644, data: "1" },
      { type: U.UNLINK, flags: 0, path: "r/d/f" },
      { type: U.UNLINK, flags: 2, path: "r/d" },
      { type: U.DIR, flags: 0, path: "r/d", mode: 0o755 },
      { type: U.FILE, flags: 0, path: "r/d/f", mode: 0o644, data: "2" },
    ];
    expect(await unpackRaw(dir, recs)).toBe("ok 7");
    expect(readFileSync(join(dir, "r/d/f"), "utf8")).toBe("2");
  });
});

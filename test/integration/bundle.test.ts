// The portable bundle: export a changed container on "host A", import it
// into an empty store standing for "host B", and it runs the same. GNU tar,
// crun and runc read it too, and a damaged one is refused.
import { describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as sys from "../../src/linux/sys.ts";
import { Digests, row } from "../../src/bundle/format.ts";
import { collect } from "../../src/image/bytes.ts";
import { readTar, type TarHeader } from "../../src/image/tar.ts";
import { archive, header } from "../helpers/tar.ts";
import { asRoot, asUser, bunker, setup } from "./harness.ts";
import { freshStore, inStore, noDebris, rootfsDir, sh, tarOf, workdir, writingIn } from "./store.ts";

const h = setup();

/** Who hashes a bundle's files on import: the unpacker as it writes them, where the CPU has the SHA extensions, or bunker. */
const HASHERS = /^flags\s*:.*\bsha_ni\b/m.test(readFileSync("/proc/cpuinfo", "utf8")) ? ["unpacker", "bunker"] : ["bunker"];

/** Every file under some directories: type, owner, mode, size, mtime (to the nanosecond), and links and
 * content, or target. The /etc files bunker binds in are left out: each container has its own. */
const LISTING =
  "cd / && find etc srv bin/busybox -xdev | grep -v -e '^etc/hosts$' -e '^etc/hostname$' -e '^etc/resolv.conf$' | sort | while read f; do " +
  "printf '%s %s ' \"$f\" \"$(stat -c '%F %u:%g %a %s %y' \"$f\")\"; " +
  "if [ -L \"$f\" ]; then readlink \"$f\"; elif [ -f \"$f\" ]; then echo $(stat -c %h \"$f\") $(sha256sum \"$f\" | cut -c1-16); else echo; fi; done";

const CHANGES = [
  "echo changed > /etc/motd",
  "mkdir -p /srv/data && echo served > /srv/data/index",
  "chown 33:33 /srv/data/index && chmod 640 /srv/data/index",
  "ln /srv/data/index /srv/data/hard",
  "ln -s data/index /srv/link",
  "touch -d @1000000000 /srv/data/index",
  "cp /bin/busybox /srv/data/suid && chmod 4755 /srv/data/suid",
  "rm /etc/group",
  // what else a file system holds: an empty file, a FIFO, times of a directory and of a symlink of their own
  ": > /srv/empty && mkfifo /srv/fifo",
  "mkdir /srv/old && touch -d @1000000100 /srv/old && touch -h -d @1000000200 /srv/link",
].join(" && ");

/**
 * `got` with each time that is within a microsecond of `want`'s on the same line taken as want's: a
 * bundle keeps times as PAX does, in decimal seconds, which import reads as a double (~0.1 µs apart).
 */
function sameTimes(got: string[], want: string[]): string[] {
  const time = /(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{9})/;
  const ns = (m: RegExpExecArray) => BigInt(Date.parse(`${m[1]}Z`)) * 1_000_000n + BigInt(m[2]!);
  return got.map((line, i) => {
    const [g, w] = [time.exec(line), time.exec(want[i] ?? "")];
    if (!g || !w) return line;
    const apart = ns(g) - ns(w);
    return apart <= 1000n && apart >= -1000n ? line.replace(g[0], w[0]) : line;
  });
}

/** Host A: an image, a container that changes it (and lists what it sees), a bundle of that container. */
function hostA(codec = "zstd") {
  const a = freshStore();
  const w = workdir();
  expect(inStore(a.env, ["import", tarOf(rootfsDir(w), join(w, "base.tar")), "--name", "base"]).code).toBe(0);
  const made = inStore(a.env, ["run", "--name", "app", "-h", "apphost", "-e", "APP=1", "-w", "/srv", "--tmpfs", "/cache", "base", "/bin/sh", "-c", `${CHANGES} && ${LISTING}`]);
  expect(made.stderr).toBe("");
  expect(made.code).toBe(0);
  const out = mkdtempSync(join(h.dir, "bundle-"));
  chmodSync(out, 0o777);
  const bundle = join(out, "app.bundle");
  const r = inStore(a.env, ["export", "app", "-o", bundle, "--compress", codec, "--json"]);
  expect(r.stderr).toBe("");
  const summary = JSON.parse(r.stdout);
  expect(summary.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  expect(summary.compressed).toBeLessThan(summary.bytes);
  return { store: a, bundle, digest: summary.digest as string, listing: made.stdout.trim().split("\n"), w };
}

/**
 * The bundle with its entries changed (by `change`, bunker.sha256 aside), as a hostile or damaged one
 * could be: every digest made again to match (resign), or bunker.sha256 as it was. Read and written
 * here, so that no owner changes on the way (as a tar extracted by another user than root would).
 */
async function rewriteBundle(bundle: string, change: (entries: [TarHeader, Uint8Array?][]) => void, resign = true): Promise<string> {
  const tar = Bun.zstdDecompressSync(readFileSync(bundle));
  const entries: [TarHeader, Uint8Array?][] = [];
  for await (const e of readTar((async function* () { yield tar; })())) {
    entries.push([e.header, e.header.type === "file" ? await collect(e.data(), 1 << 30) : undefined]);
  }
  const trailer = entries.pop()!; // bunker.sha256, last
  change(entries);
  if (resign) {
    const digests = new Digests();
    for (const [hd, data] of entries) digests.add(row(hd, data ? new Bun.CryptoHasher("sha256").update(data).digest("hex") : ""));
    const text = new TextEncoder().encode(digests.file());
    entries.push([{ ...trailer[0], size: text.length }, text]);
  } else entries.push(trailer);
  const out = join(mkdtempSync(join(h.dir, "rewritten-")), "rewritten.bundle");
  writeFileSync(out, Bun.zstdCompressSync(archive(entries)));
  sh(`chmod 755 ${join(out, "..")} && chmod 644 ${out}`);
  return out;
}

/** An entry's content replaced, its size with it. */
function replace(entries: [TarHeader, Uint8Array?][], path: string, content: (old: string) => string): void {
  const entry = entries.find(([hd]) => hd.path === path)!;
  entry[1] = new TextEncoder().encode(content(new TextDecoder().decode(entry[1])));
  entry[0] = { ...entry[0], size: entry[1].length };
}

/** The bundle with its config.json changed as a hostile one could be, every digest made again to match. */
function rewriteConfig(bundle: string, change: (config: any) => void): Promise<string> {
  return rewriteBundle(bundle, (entries) =>
    replace(entries, "config.json", (text) => {
      const config = JSON.parse(text);
      change(config);
      return JSON.stringify(config);
    }),
  );
}

describe("export and import", () => {
  test.each(["zstd", "gzip"])("a changed container moves to an empty store and runs the same (%s)", (codec) => {
    const a = hostA(codec);
    const b = freshStore();
    const imp = inStore(b.env, ["import", a.bundle]);
    expect(imp.stderr).toBe("");
    expect(imp.stdout).toMatch(/^app:latest sha256:/);
    const r = inStore(b.env, ["run", "--rm", "app", "/bin/sh", "-c", `hostname; echo $APP; pwd; grep -c ' /cache ' /proc/mounts; ${LISTING}`]);
    expect(r.stderr).toBe("");
    const [host, app, cwd, cache, ...files] = r.stdout.trim().split("\n");
    expect([host, app, cwd, cache]).toEqual(["apphost", "1", "/srv", "1"]);
    // the same files, owners, modes, times, links and contents as on host A
    expect(sameTimes(files, a.listing)).toEqual(a.listing);
    if (h.main.subuid) {
      expect(files.find((l) => l.startsWith("srv/data/index "))).toStartWith("srv/data/index regular file 33:33 640 7 2001-09-09 01:46:40.000000000 +0000 2 ");
      expect(files.find((l) => l.startsWith("srv/data/suid "))).toContain(" 0:0 4755 ");
    }
    expect(files.some((l) => l.startsWith("etc/group "))).toBe(false);
  });

  test("owners a one-id store could not hold travel in the bundle and come back where ranges exist", () => {
    if (!asRoot) return; // needs the second user and a tar with other owners
    const w = workdir();
    const tar = tarOf(rootfsDir(w, "echo x > owned && chown 33:44 owned && chmod 4750 owned"), join(w, "own.tar"));
    const single = freshStore(h.single);
    const imported = inStore(single.env, ["import", tar, "--name", "own"], { user: h.single });
    expect(imported.stderr).toContain("one-id map cannot hold");
    expect(imported.code).toBe(0);
    const out = mkdtempSync(join(h.dir, "bundle-"));
    chmodSync(out, 0o777);
    const bundle = join(out, "own.bundle");
    expect(inStore(single.env, ["export", "own", "-o", bundle], { user: h.single }).code).toBe(0);
    chmodSync(bundle, 0o644); // handed to the other user (a bundle is made 0600)
    // in the tar itself too, where GNU tar, crun and runc see them
    const listed = Bun.spawnSync(["tar", "--numeric-owner", "-tvf", bundle], { stdout: "pipe" }).stdout.toString();
    expect(listed).toMatch(/^-rwsr-x--- 33\/44 .* rootfs\/owned$/m);
    const ranges = freshStore();
    expect(inStore(ranges.env, ["import", bundle]).code).toBe(0);
    expect(inStore(ranges.env, ["run", "--rm", "own", "stat", "-c", "%u:%g %a", "/owned"]).stdout).toBe("33:44 4750\n");
  });

  test("xattrs travel in the bundle, and its digests cover them", () => {
    // an image whose file has a user.* xattr (tar's PAX SCHILY.xattr), exported, imported into another store
    const w = workdir();
    const tar = join(w, "tagged.tar");
    writeFileSync(tar, archive([[header({ type: "dir", path: "etc", mode: 0o755 })], [header({ path: "etc/tagged", size: 2, xattrs: { "user.bunker.test": new TextEncoder().encode("v1") } }), new TextEncoder().encode("ok")]]));
    chmodSync(tar, 0o644);
    const a = freshStore();
    expect(inStore(a.env, ["import", tar, "--name", "tagged"]).code).toBe(0);
    const out = mkdtempSync(join(h.dir, "bundle-"));
    chmodSync(out, 0o777);
    const bundle = join(out, "tagged.bundle");
    expect(inStore(a.env, ["export", "tagged", "-o", bundle]).stderr).toBe("");
    const b = freshStore();
    const imp = inStore(b.env, ["import", bundle]);
    expect(imp.stderr).toBe("");
    const layers = join(b.dir, "bunker", "layers");
    const [layer] = readdirSync(layers);
    expect(sys.getxattr(join(layers, layer!, "diff", "etc", "tagged"), "user.bunker.test")).toBe("v1");
    // the row of etc/tagged names it, so a changed value changes the bundle's digest
    const rows = Bun.spawnSync(["tar", "-xOf", bundle, "bunker.sha256"]).stdout.toString();
    expect(rows).toContain(`["user.bunker.test","${Buffer.from("v1").toString("base64")}"]`);
  });

  /** A bundle extracted by the user, as anyone would (plain tar, owners as the user's), its command replaced by `args`. */
  function extracted(bundle: string, args: string[]) {
    const dir = mkdtempSync(join(h.dir, "extracted-"));
    chmodSync(dir, 0o777);
    const x = Bun.spawnSync(asUser(["tar", "-C", dir, "-xf", bundle]), { stderr: "pipe" });
    expect(x.exitCode).toBe(0);
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    config.process.args = args;
    writeFileSync(join(dir, "config.json"), JSON.stringify(config));
    return { dir, config };
  }

  /** What crun and runc (those installed) print running an extracted bundle as the user. */
  function peersRun(dir: string): string[] {
    const out: string[] = [];
    for (const rt of ["runc", "crun"]) {
      if (Bun.spawnSync(["sh", "-c", `command -v ${rt}`]).exitCode !== 0) continue;
      if (rt === "crun" && !asRoot) continue; // crun refuses this host's hybrid cgroups unless the empty cgroup2 is hidden
      const state = mkdtempSync(join(h.dir, `${rt}-state-`));
      chmodSync(state, 0o777);
      const cmd = asUser([rt, "--root", state, "run", "--bundle", dir, `b${process.pid}`]);
      const hide = "mountpoint -q /sys/fs/cgroup/unified && mount -t tmpfs none /sys/fs/cgroup/unified; exec \"$@\"";
      const r = Bun.spawnSync(asRoot ? ["unshare", "-m", "--propagation", "private", "sh", "-c", hide, "sh", ...cmd] : cmd, { stdout: "pipe", stderr: "pipe" });
      out.push(`${rt}: ${r.stdout.toString()}${r.stderr.toString()}`);
    }
    return out;
  }

  test("a read-only root and a volume's declaration travel: the imported image runs read-only, with the volume's mount point", () => {
    const a = freshStore();
    const w = workdir();
    expect(inStore(a.env, ["import", tarOf(rootfsDir(w), join(w, "base.tar")), "--name", "base"]).code).toBe(0);
    expect(inStore(a.env, ["run", "--name", "ro", "--read-only", "-v", `${w}:/data:ro`, "base", "true"]).code).toBe(0);
    const out = mkdtempSync(join(h.dir, "bundle-"));
    chmodSync(out, 0o777);
    expect(inStore(a.env, ["export", "ro", "-o", join(out, "ro.bundle")]).code).toBe(0);
    const b = freshStore();
    expect(inStore(b.env, ["import", join(out, "ro.bundle"), "--name", "ro"]).code).toBe(0);
    // the host's directory stays behind (a host path means nothing elsewhere); the volume is declared
    expect(JSON.parse(inStore(b.env, ["inspect", "--json", "ro"]).stdout)[0].Config.Volumes).toEqual({ "/data": {} });
    const r = inStore(b.env, ["run", "--rm", "ro", "/bin/sh", "-c", "touch /etc/x 2>/dev/null || echo read-only; touch /data/y && echo volume writable"]);
    expect([r.code, r.stdout]).toEqual([0, "read-only\nvolume writable\n"]);
  });

  test("GNU tar reads a bundle: an OCI runtime bundle that crun and runc run", () => {
    const a = hostA();
    const list = Bun.spawnSync(["tar", "-tf", a.bundle]).stdout.toString().split("\n");
    expect(list.slice(0, 3)).toEqual(["bunker.json", "config.json", "rootfs/"]);
    expect(list.filter(Boolean).at(-1)).toBe("bunker.sha256");
    const { dir, config } = extracted(a.bundle, ["/bin/sh", "-c", "cat /etc/motd; hostname"]);
    expect(config.root.path).toBe("rootfs");
    expect(config.hostname).toBe("apphost");
    // bunker itself runs it as a bundle
    expect(bunker(["run", dir]).stdout).toBe("changed\napphost\n");
    for (const got of peersRun(dir)) expect(got).toBe(`${got.split(":")[0]}: changed\napphost\n`);
  });

  test("a bundle of a container run as another user than root runs under crun and runc too (its ids mapped through subordinate ranges)", () => {
    const a = freshStore();
    const w = workdir();
    expect(inStore(a.env, ["import", tarOf(rootfsDir(w), join(w, "base.tar")), "--name", "base"]).code).toBe(0);
    expect(inStore(a.env, ["run", "--name", "www", "-u", "33:33", "base", "true"]).code).toBe(0);
    const out = mkdtempSync(join(h.dir, "bundle-"));
    chmodSync(out, 0o777);
    expect(inStore(a.env, ["export", "www", "-o", join(out, "www.bundle")]).code).toBe(0);
    const { dir, config } = extracted(join(out, "www.bundle"), ["/bin/sh", "-c", "id -u; id -g"]);
    expect(config.process.user).toMatchObject({ uid: 33, gid: 33 });
    expect(config.linux.uidMappings.length).toBe(2);
    expect(bunker(["run", dir]).stdout).toBe("33\n33\n");
    for (const got of peersRun(dir)) expect(got).toBe(`${got.split(":")[0]}: 33\n33\n`);
  });

  test("a damaged bundle is refused, naming what does not match, and nothing is left", async () => {
    const a = hostA();
    // change one file's content inside the tar and recompress: every frame is valid, the digests are not
    const tampered = await rewriteBundle(a.bundle, (entries) => replace(entries, "rootfs/etc/motd", () => "evil\n"), false);
    const dir = join(tampered, "..");
    const b = freshStore();
    for (const how of HASHERS) {
      const env = { ...b.env, BUNKER_SHA256: how };
      const r = inStore(env, ["import", tampered]);
      expect(r.code).toBe(125);
      expect(r.stderr.trim()).toMatch(/^bunker: .*"rootfs\/etc\/motd" does not match bunker.sha256: the bundle is corrupt$/);
      noDebris(b.dir);
    }
    // a flipped byte in a compressed frame: the frame no longer decodes, or the digests catch it
    const bytes = new Uint8Array(readFileSync(a.bundle));
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    writeFileSync(join(dir, "flipped.bundle"), bytes);
    chmodSync(join(dir, "flipped.bundle"), 0o644);
    const f = inStore(b.env, ["import", join(dir, "flipped.bundle")]);
    expect(f.code).toBe(125);
    expect(f.stderr.trim().split("\n")).toHaveLength(1);
    noDebris(b.dir);
    // cut short: the digests never arrive
    writeFileSync(join(dir, "cut.bundle"), readFileSync(a.bundle).subarray(0, 100_000));
    chmodSync(join(dir, "cut.bundle"), 0o644);
    const c = inStore(b.env, ["import", join(dir, "cut.bundle")]);
    expect(c.code).toBe(125);
    noDebris(b.dir);
    // packed again by hand, bunker.json no longer first (with a change to a file): not a root filesystem of bunker.json, config.json
    // and rootfs/, imported unchecked, but refused
    const x = join(dir, "repacked");
    sh(`mkdir -p ${x} && tar -C ${x} -xf ${a.bundle} && echo evil >> ${x}/rootfs/etc/motd`);
    for (const [name, order] of [["config-first", "config.json bunker.json rootfs bunker.sha256"], ["rootfs-first", "rootfs bunker.json config.json bunker.sha256"]]) {
      const out = join(dir, `${name}.tar.zst`);
      sh(`tar -C ${x} --zstd -cf ${out} ${order} && chmod 644 ${out}`);
      const r = inStore(b.env, ["import", out]);
      expect([r.code, r.stderr]).toEqual([125, `bunker: ${out} holds a bunker bundle's files, but bunker.json does not come first: it was packed again, and its digests cannot be checked; import the bundle as it was exported\n`]);
      noDebris(b.dir);
    }
  });

  test("--digest takes a bundle only if its digest is the one export printed, and nothing else", () => {
    const a = hostA();
    const b = freshStore();
    const wrong = `sha256:${"0".repeat(64)}`;
    const r = inStore(b.env, ["import", a.bundle, "--digest", wrong]);
    expect(r.code).toBe(125);
    expect(r.stderr).toBe(`bunker: ${a.bundle}: the bundle's digest is ${a.digest}, not ${wrong} as --digest says\n`);
    noDebris(b.dir);
    const malformed = inStore(b.env, ["import", a.bundle, "--digest", "abc"]);
    expect([malformed.code, malformed.stderr]).toEqual([125, 'bunker: invalid --digest "abc": a bundle\'s digest is sha256: and 64 hex digits\n']);
    const w = workdir();
    const rootfs = tarOf(rootfsDir(w), join(w, "plain.tar"));
    const plain = inStore(b.env, ["import", rootfs, "--digest", a.digest]);
    expect([plain.code, plain.stderr]).toEqual([125, `bunker: --digest checks a bunker bundle, and ${rootfs} is not one\n`]);
    noDebris(b.dir);
    const ok = inStore(b.env, ["import", a.bundle, "--digest", a.digest]);
    expect(ok.stderr).toBe("");
    expect(ok.stdout).toMatch(/^app:latest sha256:/);
  });

  test("a bundle of more files than the unpacker hashes between two reports, of every size around a block, imports the same, hashed by either", () => {
    const a = freshStore();
    const w = workdir();
    expect(inStore(a.env, ["import", tarOf(rootfsDir(w), join(w, "base.tar")), "--name", "base"]).code).toBe(0);
    const made = inStore(a.env, ["run", "--name", "many", "base", "/bin/sh", "-c", [
      "mkdir -p /srv/many /srv/sizes && cd /srv/many && i=0 && while [ $i -lt 5000 ]; do echo $i > $i; i=$((i+1)); done",
      // SHA-256 pads into 64-byte blocks: every length up to three of them, and some around the unpacker's buffer
      "cd /srv/sizes && for n in $(seq 0 200) 65535 65536 65537 1048583; do head -c $n /dev/urandom > $n; done",
    ].join(" && ")]);
    expect(made.stderr).toBe("");
    const out = mkdtempSync(join(h.dir, "many-"));
    chmodSync(out, 0o777);
    expect(inStore(a.env, ["export", "many", "-o", join(out, "many.bundle")]).code).toBe(0);
    const ids = HASHERS.map((how) => {
      const b = freshStore();
      const env = { ...b.env, BUNKER_SHA256: how };
      const imp = inStore(env, ["import", join(out, "many.bundle")]);
      expect(imp.stderr).toBe("");
      const r = inStore(env, ["run", "--rm", "many", "/bin/sh", "-c", "ls /srv/many | wc -l; cat /srv/many/0 /srv/many/4096 /srv/many/4999; wc -c < /srv/sizes/1048583"]);
      expect(r.stderr).toBe("");
      expect(r.stdout.trim().split("\n").map((l) => l.trim())).toEqual(["5000", "0", "4096", "4999", "1048583"]);
      return imp.stdout;
    });
    expect(ids[0]).toMatch(/^many:latest sha256:[0-9a-f]{64}\n$/);
    expect(new Set(ids).size).toBe(1);
  });

  test("hard links in their hundreds come back as links, each to its own file", () => {
    const a = freshStore();
    const w = workdir();
    expect(inStore(a.env, ["import", tarOf(rootfsDir(w), join(w, "base.tar")), "--name", "base"]).code).toBe(0);
    // 700 files with two more names each: the exporter's table of linked files grows several times
    const made = inStore(a.env, ["run", "--name", "linked", "base", "/bin/sh", "-c", "mkdir /h && cd /h && for i in $(seq 700); do echo $i > f$i; ln f$i g$i; ln f$i k$i; done"]);
    expect(made.code).toBe(0);
    const out = mkdtempSync(join(h.dir, "bundle-"));
    chmodSync(out, 0o777);
    expect(inStore(a.env, ["export", "linked", "-o", join(out, "l.bundle")]).stderr).toBe("");
    const b = freshStore();
    expect(inStore(b.env, ["import", join(out, "l.bundle")]).code).toBe(0);
    const check = "cd /h && for i in $(seq 700); do set -- $(stat -c '%i %h' f$i g$i k$i) $(cat k$i); [ $1 = $3 ] && [ $1 = $5 ] && [ $2 = 3 ] && [ $7 = $i ] || echo bad $i; done; stat -c %i /h/f* | sort -u | wc -l";
    const r = inStore(b.env, ["run", "--rm", "linked", "/bin/sh", "-c", check]);
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe("700");
  });

  test("names that are not UTF-8 travel byte for byte, from a tar GNU tar wrote and through a bundle", () => {
    // "café" in Latin-1, and in UTF-8 the replacement character a lossy decoder would have made of it
    const w = workdir();
    const long = "d".repeat(120);
    const src = rootfsDir(w, `mkdir -p l/${long} && echo latin > "l/$(printf 'caf\\351')" && echo utf8 > "l/$(printf 'caf\\357\\277\\275')" && echo deep > "l/${long}/$(printf '\\351t\\351')" && ln -s "$(printf 'caf\\351')" l/ln`);
    const tar = join(w, "names.tar");
    sh(`tar --format=pax --numeric-owner -C ${src} -cf ${tar} . && chmod 644 ${tar}`);
    const a = freshStore();
    expect(inStore(a.env, ["import", tar, "--name", "names"]).stderr).toBe("");
    const list = `cd /l && for f in caf* ${long}/* ln; do printf '%s ' "$f" | od -An -v -tx1 | tr -d ' \\n'; echo " $(cat "$f")"; done; printf '%s' "$(readlink ln)" | od -An -v -tx1`;
    const want = ["636166e920 latin", "636166efbfbd20 utf8", `${Buffer.from(`${long}/`).toString("hex")}e974e920 deep`, "6c6e20 latin", " 63 61 66 e9"];
    expect(inStore(a.env, ["run", "--name", "n", "names", "/bin/sh", "-c", list]).stdout.trim().split("\n")).toEqual(want);
    const out = mkdtempSync(join(h.dir, "bundle-"));
    chmodSync(out, 0o777);
    expect(inStore(a.env, ["export", "n", "-o", join(out, "n.bundle")]).stderr).toBe("");
    const b = freshStore();
    expect(inStore(b.env, ["import", join(out, "n.bundle")]).stderr).toBe("");
    expect(inStore(b.env, ["run", "--rm", "n", "/bin/sh", "-c", list]).stdout.trim().split("\n")).toEqual(want);
    // and GNU tar reads the bundle's names as the same bytes
    chmodSync(join(out, "n.bundle"), 0o644);
    const gnu = Bun.spawnSync(["tar", "--quoting-style=literal", "-tf", join(out, "n.bundle")], { stdout: "pipe", stderr: "pipe" });
    expect(gnu.stderr.toString()).toBe(""); // no "Ignoring unknown extended header keyword"
    const listed = gnu.stdout;
    expect(Buffer.from(listed).includes(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]))).toBe(true);
    expect(Buffer.from(listed).includes(Buffer.concat([Buffer.from(`${long}/`), Buffer.from([0xe9, 0x74, 0xe9, 0x0a])]))).toBe(true); // a PAX name
  });

  test("a bundle's config reaches nothing of the host: its host mounts, shared namespaces, extra capabilities and new privileges are left out, with a notice", async () => {
    const a = hostA();
    const secret = mkdtempSync(join(h.dir, "secret-"));
    writeFileSync(join(secret, "key"), "TOPSECRET\n");
    sh(`chmod 755 ${secret} && chmod 644 ${secret}/key`); // the user could read it: the bundle may not
    const evil = await rewriteConfig(a.bundle, (c) => {
      c.mounts.push({ destination: "/stolen", type: "bind", source: secret, options: ["rbind", "ro"] });
      c.mounts.push({ destination: "/lower", type: "overlay", source: "overlay", options: [`lowerdir=${secret}:${secret}`] });
      // the kernel's own file systems again, elsewhere or writable: what the defaults mask or make read-only would show
      c.mounts.push({ destination: "/mnt/p", type: "proc", source: "proc" }, { destination: "/mnt/c", type: "cgroup2", source: "cgroup", options: ["rw"] });
      c.mounts = c.mounts.map((m: { destination: string }) => (m.destination === "/proc" ? { ...m, options: ["rw"] } : m));
      c.linux.namespaces = c.linux.namespaces.filter((n: { type: string }) => n.type !== "pid");
      c.linux.maskedPaths = [];
      c.linux.readonlyPaths = [];
      c.process.capabilities.bounding.push("CAP_SYS_ADMIN");
      c.process.noNewPrivileges = false;
    });
    const b = freshStore();
    const imp = inStore(b.env, ["import", evil, "--name", "evil"]);
    expect(imp.code).toBe(0);
    expect(imp.stderr).toBe(
      `bunker: the bundle's config asks for what an imported image may not have, left out: noNewPrivileges false, capability CAP_SYS_ADMIN, mount of ${secret} on /stolen, mount of overlay on /lower, mount of proc on /mnt/p, mount of cgroup on /mnt/c, the host's pid namespace (give what you trust to bunker run: -v, --cap-add)\n`,
    );
    const inside = "echo $$; ls /stolen /lower /mnt/p /mnt/c 2>&1 | wc -l; grep -E '^(CapBnd|NoNewPrivs)' /proc/self/status; wc -c < /proc/keys; echo 1 2>/dev/null > /proc/sys/kernel/msgmax || echo read-only";
    const want = ["1", "4", "CapBnd:\t00000000a80425fb", "NoNewPrivs:\t1", "0", "read-only"];
    const r = inStore(b.env, ["run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", "evil", "-c", inside]);
    expect([r.stdout.trim().split("\n"), r.stderr]).toEqual([want, ""]);
    // what an older bunker stored as it came is held to the same when it runs
    const index = join(b.dir, "bunker/images.json");
    const stored = JSON.parse(readFileSync(index, "utf8"));
    stored.images[0].runtime.mounts.push({ destination: "/stolen", type: "bind", source: secret, options: ["rbind", "ro"] });
    writeFileSync(index, JSON.stringify(stored));
    const old = inStore(b.env, ["run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", "evil", "-c", "cat /stolen/key 2>&1"]);
    expect(old.stdout).not.toContain("TOPSECRET");
  });

  test("export refuses to overwrite", () => {
    const a = hostA();
    const again = inStore(a.store.env, ["export", "app", "-o", a.bundle]);
    expect(again.code).toBe(125);
    expect(again.stderr).toContain("exists: remove it first");
    expect(inStore(a.store.env, ["export", "nothing", "-o", `${a.bundle}2`]).stderr.trim()).toBe("bunker: no such container or image: nothing");
  });

  test("as docker export and docker load: export writes to the standard output without -o (or with -o -), and import - reads a pipe or a file", () => {
    const a = hostA();
    const [b, c] = [freshStore(), freshStore()];
    const into = (s: typeof b) => `XDG_DATA_HOME=${s.env.XDG_DATA_HOME} XDG_RUNTIME_DIR=${s.env.XDG_RUNTIME_DIR}`;
    const shell = (script: string) => {
      const r = Bun.spawnSync(asUser(["sh", "-c", script, h.bin], { env: a.store.env }), { stdout: "pipe", stderr: "pipe" });
      return [r.exitCode, r.stderr.toString()];
    };
    const file = join(mkdtempSync(join(h.dir, "stdout-")), "app.bundle");
    chmodSync(join(file, ".."), 0o777);
    expect(shell(`"$0" export app | ${into(b)} "$0" import - --name piped`)).toEqual([0, ""]); // a pipe: kept in the store, then imported
    expect(shell(`"$0" export app -o - > ${file} && ${into(b)} "$0" import - --name redirected < ${file}`)).toEqual([0, ""]);
    for (const name of ["piped", "redirected"]) {
      const r = inStore(b.env, ["run", "--rm", name, "/bin/sh", "-c", `hostname; ${LISTING}`]);
      expect(r.stderr).toBe("");
      expect(sameTimes(r.stdout.trim().split("\n").slice(1), a.listing)).toEqual(a.listing);
    }
    expect(readdirSync(join(b.dir, "bunker/tmp"))).toEqual([]); // the spooled input is gone
    // a file read from where its reader left it, not from its start (a line read off it first)
    const offset = `${file}.after-a-line`;
    expect(shell(`(echo hello; cat ${file}) > ${offset} && { read -r line; ${into(b)} "$0" import - --name offset; } < ${offset}`)).toEqual([0, ""]);
    // a pipe named as a file (/dev/stdin, a FIFO, bash's <(...)): kept first, as the standard input is, and named as given
    const fifo = `${file}.fifo`;
    expect(shell(`"$0" export app | ${into(b)} "$0" import /dev/stdin --name devstdin`)).toEqual([0, ""]);
    expect(shell(`mkfifo ${fifo} && { "$0" export app > ${fifo} & } && ${into(b)} "$0" import ${fifo} --name fifo`)).toEqual([0, ""]);
    expect(JSON.parse(inStore(b.env, ["inspect", "--json", "fifo"]).stdout)[0].Source).toBe(fifo);
    expect(inStore(b.env, ["run", "--rm", "devstdin", "/bin/sh", "-c", "echo ran"]).stdout).toBe("ran\n");
    expect(shell(`${into(b)} "$0" import /dev/zero`)).toEqual([125, "bunker: /dev/zero is not a regular file, a pipe or a directory: not an archive\n"]);
    // pipes another process made non-blocking (as Node hands them down): waited on, not failed with EAGAIN
    const nonblocking = `import fcntl, os, subprocess, sys, time
r, w = os.pipe()
out = sys.argv[1] == "out"
fcntl.fcntl(w if out else r, fcntl.F_SETFL, os.O_NONBLOCK)
p = subprocess.Popen(sys.argv[2:], stdout=w) if out else subprocess.Popen(sys.argv[2:], stdin=r)
os.close(w if out else r)
time.sleep(0.5)  # the pipe fills (or stays empty) meanwhile: EAGAIN, for a careless reader or writer
if out:
    while chunk := os.read(r, 1 << 16): sys.stdout.buffer.write(chunk)
else:
    os.set_blocking(w, True); os.write(w, sys.stdin.buffer.read()); os.close(w)
sys.exit(p.wait())`;
    const py = join(mkdtempSync(join(h.dir, "py-")), "nb.py");
    writeFileSync(py, nonblocking);
    sh(`chmod 755 ${join(py, "..")} && chmod 644 ${py}`);
    const nb = `${file}.nonblocking`;
    expect(shell(`python3 ${py} out "$0" export app > ${nb}`)).toEqual([0, ""]);
    expect(shell(`python3 ${py} in env ${into(b)} "$0" import - --name nonblocking < ${nb}`)).toEqual([0, ""]);
    expect(inStore(b.env, ["images", "--json"]).stdout).toContain("nonblocking:latest");
    // a stream cut short, and an empty one: refused, and nothing left
    expect(shell(`"$0" export app 2>/dev/null | head -c 100000 | ${into(c)} "$0" import -`)).toEqual([125, "bunker: the standard input: the zstd stream is truncated\n"]);
    expect(shell(`${into(c)} "$0" import - < /dev/null`)).toEqual([125, "bunker: the standard input is empty: not an archive\n"]);
    noDebris(c.dir);
    // never to or from a terminal (script gives the command one), and --json would mix with the bundle
    const tty = (args: string) => Bun.spawnSync(["script", "-qec", asUser([h.bin, ...args.split(" ")], { env: a.store.env }).map((w) => `'${w}'`).join(" "), "/dev/null"], { stdout: "pipe" }).stdout.toString();
    expect(tty("export app")).toContain("bunker: refusing to write a bundle to a terminal: use -o FILE, or redirect the output");
    expect(tty("import -")).toContain("bunker: refusing to read an archive from a terminal: name a FILE, or redirect the input");
    expect(shell(`"$0" export app --json > /dev/null`)).toEqual([125, "bunker: --json prints to the standard output, where the bundle goes: use -o FILE with it\n"]);
    // a closed standard output (Bun puts /dev/null in its place) is not taken for one that is there, nor /dev/null for a closed one
    expect(shell(`"$0" export app >&-`)).toEqual([125, "bunker: the standard output is closed: use -o FILE, or redirect the output\n"]);
    expect(shell(`"$0" export app > /dev/null`)).toEqual([0, ""]);
    expect(shell(`"$0" export app -o ""`)).toEqual([125, "bunker: export -o needs a FILE: where to write the bundle\n"]);
  });

  test("an output it cannot write is one line naming it and what to do, and leaves nothing", () => {
    const a = hostA();
    const locked = mkdtempSync(join(h.dir, "locked-"));
    chmodSync(locked, 0o555); // no one but root may write here, and the test user is not root
    for (const [out, why] of [
      [join(h.dir, "no-such-dir", "x.bundle"), "no such file or directory (its directory does not exist)"],
      [join(locked, "x.bundle"), "permission denied (choose a directory you can write to)"],
    ]) {
      const r = inStore(a.store.env, ["export", "app", "-o", out!]);
      expect(r.code).toBe(125);
      expect(r.stderr).toBe(`bunker: cannot write ${out}: ${why}\n`);
    }
    expect(readdirSync(locked)).toEqual([]);
  });

  test("a file system it cannot read whole says where and why, and leaves nothing", async () => {
    const a = freshStore();
    const w = workdir();
    expect(inStore(a.env, ["import", tarOf(rootfsDir(w), join(w, "base.tar")), "--name", "base"]).code).toBe(0);
    const out = mkdtempSync(join(h.dir, "unread-"));
    chmodSync(out, 0o777);
    // a tree deeper than a path may be: 41 names of 100 bytes (made one directory at a time; a shell's cd stops at 40)
    const deep = 'n=$(printf "%0100d" 0); for i in $(seq 40); do mkdir $n && cd $n || exit 1; done; mkdir $n';
    expect(inStore(a.env, ["run", "--name", "deep", "base", "/bin/sh", "-c", deep]).code).toBe(0);
    const r = inStore(a.env, ["export", "deep", "-o", join(out, "deep.bundle")]);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/^bunker: cannot export deep: reading \/0{50}\.\.\.0{50}: file name too long \(a path in a bundle is at most 4095 bytes\)\n$/);
    // one of 4095 bytes exactly (39 names of 100, and one of 156) goes, and comes back
    const longest = `n=$(printf "%0100d" 0); for i in $(seq 39); do mkdir -p $n && cd $n || exit 1; done; L=$(printf "%0156d" 0); X`;
    expect(inStore(a.env, ["run", "--name", "longest", "base", "/bin/sh", "-c", longest.replace("X", "echo far > $L")]).code).toBe(0);
    expect(inStore(a.env, ["export", "longest", "-o", join(out, "longest.bundle")]).code).toBe(0);
    const b = freshStore();
    const back = inStore(b.env, ["import", join(out, "longest.bundle"), "--name", "longest"]);
    expect([back.code, back.stderr]).toEqual([0, ""]);
    expect(inStore(b.env, ["run", "--rm", "longest", "/bin/sh", "-c", longest.replace("X", "cat $L")]).stdout).toBe("far\n");
    sys.unlink(join(out, "longest.bundle"));
    // a file written to while it is read (from outside: the container is stopped)
    expect(inStore(a.env, ["run", "--name", "busy", "base", "/bin/sh", "-c", "head -c 30000000 /dev/zero > /busy"]).code).toBe(0);
    const [id] = readdirSync(join(a.dir, "bunker/containers")).filter((c) => existsSync(join(a.dir, "bunker/containers", c, "upper/busy")));
    const writer = Bun.spawn(["sh", "-c", `while :; do echo x >> ${join(a.dir, "bunker/containers", id!, "upper/busy")}; done`]);
    try {
      const busy = inStore(a.env, ["export", "busy", "-o", join(out, "busy.bundle")]);
      expect(busy.code).toBe(125);
      expect(busy.stderr).toBe("bunker: /busy in busy changed while it was read: export it again\n");
    } finally {
      writer.kill();
    }
    expect(readdirSync(out)).toEqual([]);
  });

  test.skipIf(!asRoot)("a file that ends before its size (a shrunk file's data is made up to it, then the failure is read as one)", () => {
    const a = freshStore();
    const w = workdir();
    expect(inStore(a.env, ["import", tarOf(rootfsDir(w), join(w, "base.tar")), "--name", "one"]).code).toBe(0);
    // a sysfs attribute says 4096 bytes and has fewer: what a file cut short while it is read looks like, every time
    const [layer] = readdirSync(join(a.dir, "bunker/layers"));
    const file = join(a.dir, "bunker/layers", layer!, "diff/etc/short");
    writeFileSync(file, "");
    sh(`mount --bind /sys/kernel/mm/transparent_hugepage/enabled ${file}`);
    try {
      const out = mkdtempSync(join(h.dir, "short-"));
      chmodSync(out, 0o777);
      const r = inStore(a.env, ["export", "one", "-o", join(out, "one.bundle")]);
      expect([r.code, r.stderr]).toEqual([125, "bunker: /etc/short in one changed while it was read: export it again\n"]);
      expect(readdirSync(out)).toEqual([]);
    } finally {
      sh(`umount ${file}`);
    }
  });

  test("memory stays under 200 MB whatever the size: 300 MB that does not compress, through zstd and gzip", () => {
    const { env } = freshStore();
    const w = workdir();
    expect(inStore(env, ["import", tarOf(rootfsDir(w), join(w, "base.tar")), "--name", "base"]).code).toBe(0);
    expect(inStore(env, ["run", "--network", "none", "--name", "noise", "base", "/bin/sh", "-c", "head -c 300000000 /dev/urandom > /noise"]).code).toBe(0);
    const out = mkdtempSync(join(h.dir, "noise-"));
    chmodSync(out, 0o777);
    for (const codec of ["zstd", "gzip"]) {
      const r = Bun.spawnSync(["/usr/bin/time", "-f", "%M", ...asUser([h.bin, "export", "noise", "--compress", codec, "-o", join(out, `${codec}.bundle`)], { env })], { stderr: "pipe" });
      const lines = r.stderr.toString().trim().split("\n");
      expect({ codec, code: r.exitCode, lines: lines.length }).toEqual({ codec, code: 0, lines: 1 });
      // under the promised 200 MB with room to spare (~126 MB here): gzip's frames, left to a lazy GC, peaked at 181-270 MB
      expect({ codec, kB: Number(lines[0]) < 160 * 1024 }).toEqual({ codec, kB: true });
    }
    rmSync(out, { recursive: true });
  });

  test("an export interrupted by ^C or a kill leaves no partial file, and exits as the signal says", async () => {
    const a = freshStore();
    const w = workdir();
    // 48 MB that do not compress: the export runs long enough to be caught midway
    const base = tarOf(rootfsDir(w, "head -c 48000000 /dev/urandom > big"), join(w, "big.tar"));
    expect(inStore(a.env, ["import", base, "--name", "big"]).code).toBe(0);
    const out = mkdtempSync(join(h.dir, "cut-"));
    chmodSync(out, 0o777);
    for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143], ["SIGKILL", 137]] as const) {
      const p = Bun.spawn(asUser([h.bin, "export", "big", "-o", join(out, "big.bundle")], { env: a.env }), { stderr: "pipe" });
      // bunker (not setpriv or env, which exec it) is writing its unnamed file there
      while (!writingIn(p.pid, out) && p.exitCode === null) await Bun.sleep(2);
      p.kill(signal);
      expect(await p.exited).toBe(code);
      expect(readdirSync(out)).toEqual([]);
    }
  });
});

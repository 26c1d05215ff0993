// Images: import each kind of input (made here, with GNU tar), run it on an
// overlay, keep and remove containers.
import { describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { asRoot, asUser, setup } from "./harness.ts";
import { freshStore, inStore, noDebris, rootfsDir, sh, tarOf, workdir } from "./store.ts";

const h = setup();

async function sha256(path: string): Promise<string> {
  return new Bun.CryptoHasher("sha256").update(await Bun.file(path).bytes()).digest("hex");
}

/** A directory of files (path -> content); whiteout names are just names here. */
function layerDir(w: string, name: string, files: Record<string, string>): string {
  const dir = join(w, name);
  mkdirSync(dir, { recursive: true });
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, ".."), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

describe("a root filesystem tar", () => {
  test.each(["plain", "gzip", "zstd", "pzstd"])("imports (%s) and runs; changes stay in the container until rm", (how) => {
    const w = workdir();
    let tar = tarOf(rootfsDir(w), join(w, "rootfs.tar"));
    if (how === "gzip") sh(`gzip ${tar}`), (tar += ".gz");
    if (how === "zstd") sh(`zstd -q --rm ${tar}`), (tar += ".zst");
    if (how === "pzstd") sh(`pzstd -q -p 2 --rm ${tar}`), (tar += ".zst"); // a skippable frame before each frame
    chmodSync(tar, 0o644);
    const { env, dir } = freshStore();
    const imp = inStore(env, ["import", tar, "--name", "test/rootfs:1"]);
    expect(imp.stderr).toBe("");
    expect(imp.stdout).toMatch(/^test\/rootfs:1 sha256:[0-9a-f]{64}\n$/);
    const images = JSON.parse(inStore(env, ["images", "--json"]).stdout);
    expect(images).toHaveLength(1);
    expect(images[0].names).toEqual(["test/rootfs:1"]);

    const r = inStore(env, ["run", "--name", "c1", "test/rootfs:1", "/bin/sh", "-c", "grep ' / ' /proc/mounts | cut -d' ' -f3; echo changed > /etc/motd; echo $$"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("overlay\n1\n");
    const ps = JSON.parse(inStore(env, ["ps", "-a", "--json"]).stdout);
    expect(ps.map((c: { name: string; status: string }) => [c.name, c.status])).toEqual([["c1", "exited (0)"]]);
    // the change is in the container's upper layer, not in the image
    const c = ps[0].id;
    expect(existsSync(join(dir, "bunker/containers", c, "upper/etc/motd"))).toBe(true);
    expect(inStore(env, ["run", "--rm", "test/rootfs:1", "cat", "/etc/motd"]).code).not.toBe(0);
    expect(inStore(env, ["rm", "c1"]).code).toBe(0);
    expect(existsSync(join(dir, "bunker/containers", c))).toBe(false);
    expect(JSON.parse(inStore(env, ["ps", "-a", "--json"]).stdout)).toEqual([]);
  });

  test("one whose first entry is named like an image's (a directory named by a digest) is a root filesystem all the same", () => {
    const w = workdir();
    const hex = "ab".repeat(32);
    const src = rootfsDir(w, `mkdir ${hex} && echo cached > ${hex}/blob`);
    const tar = join(w, "r.tar");
    sh(`cd ${src} && tar --numeric-owner -cf ${tar} ${hex} $(ls | grep -v ${hex}) && gzip -k ${tar} && chmod 644 ${tar} ${tar}.gz`);
    for (const input of [tar, `${tar}.gz`]) {
      const { env } = freshStore();
      const imp = inStore(env, ["import", input, "--name", "digestdir"]);
      expect(imp.stderr).toBe("");
      expect(inStore(env, ["run", "--rm", "digestdir", "cat", `/${hex}/blob`]).stdout).toBe("cached\n");
    }
    // an old docker save (no manifest.json, only "repositories") is named as what it is
    const old = join(w, "old");
    mkdirSync(join(old, hex), { recursive: true });
    writeFileSync(join(old, "repositories"), "{}");
    writeFileSync(join(old, hex, "json"), "{}");
    sh(`cd ${old} && tar -cf ${w}/old.tar ${hex} repositories && chmod 644 ${w}/old.tar`);
    const { env, dir } = freshStore();
    const r = inStore(env, ["import", `${w}/old.tar`]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("a docker save of the old format (no manifest.json)");
    noDebris(dir);
  });

  test("--rm leaves nothing; a name stays taken by a stopped container until rm; rmi frees the layers", () => {
    const w = workdir();
    const { env, dir } = freshStore();
    expect(inStore(env, ["import", tarOf(rootfsDir(w), join(w, "r.tar")), "--name", "img"]).code).toBe(0);
    expect(inStore(env, ["run", "--rm", "--name", "tmp1", "img", "true"]).code).toBe(0);
    // files of other owners, in a directory no one may enter, go too
    const chowned = inStore(env, ["run", "--rm", "img", "sh", "-c", "mkdir -p /d/e && touch /d/e/f && chown -R 33:33 /d && chmod 0 /d"]);
    expect(chowned.stderr).toBe("");
    expect(chowned.code).toBe(0);
    // and so does a container that fails to start: here its network helper, a pasta that exits at once
    const fake = join(w, "bin");
    mkdirSync(fake);
    writeFileSync(join(fake, "pasta"), "#!/bin/sh\necho 'pasta: no way' >&2\nexit 1\n", { mode: 0o755 });
    const failed = inStore(env, ["run", "--rm", "--network", "pasta", "img", "true"], { env: { PATH: `${fake}:/usr/bin:/bin` } });
    expect(failed.code).toBe(125);
    expect(failed.stderr).toContain("bunker: start pasta: exited with status 1");
    expect(readdirSync(join(dir, "bunker/containers"))).toEqual([]);
    expect(readdirSync(join(dir, "bunker/names"))).toEqual([]);
    expect(inStore(env, ["run", "--name", "kept", "img", "sh", "-c", "exit 3"]).code).toBe(3);
    const again = inStore(env, ["run", "--name", "kept", "img", "true"]);
    expect(again.code).toBe(125);
    expect(again.stderr).toContain(`the container name "kept" is already in use`);
    expect(inStore(env, ["rmi", "img"]).stderr).toContain("is used by container kept");
    expect(inStore(env, ["rm", "kept"]).code).toBe(0);
    expect(inStore(env, ["rmi", "img"]).code).toBe(0);
    expect(readdirSync(join(dir, "bunker/layers"))).toEqual([]);
    const missing = inStore(env, ["run", "img", "true"]);
    expect(missing.code).toBe(125);
    expect(missing.stderr.trim()).toBe("bunker: img: no such image in the store, and no such directory (see 'bunker images'; 'bunker import' adds one)");
  });

  test("images, ps -a and inspect make no store where there is none", () => {
    const { env, dir } = freshStore();
    expect(inStore(env, ["images"]).stdout).toBe("REPOSITORY   TAG   IMAGE ID   CREATED   SIZE\n");
    expect(inStore(env, ["images", "--json"]).stdout).toBe("[]\n");
    expect(inStore(env, ["ps", "-a", "--json"]).stdout).toBe("[]\n");
    expect(inStore(env, ["inspect", "x"]).code).toBe(125);
    expect(readdirSync(dir)).toEqual([]);
  });

  test("tag gives an image a name, which leaves the image that had it, as Docker's; a bad name or image is refused", async () => {
    const w = workdir();
    const { env } = freshStore();
    const src = rootfsDir(w);
    expect(inStore(env, ["import", tarOf(src, join(w, "a.tar")), "--name", "a"]).code).toBe(0);
    sh(`echo other > ${src}/other`);
    expect(inStore(env, ["import", tarOf(src, join(w, "c.tar")), "--name", "c"]).code).toBe(0);
    const images = () => (JSON.parse(inStore(env, ["images", "--json"]).stdout) as { id: string; names: string[] }[]).map((i) => [i.id, i.names] as const);
    const [[a], [c]] = images();
    const tag = (...args: string[]) => {
      const r = inStore(env, ["tag", ...args]);
      return [r.code, r.stdout, r.stderr];
    };
    expect(tag("a", "b:1")).toEqual([0, "", ""]);
    expect(tag(c!.slice(7, 15), "example.com/c/d:2.0")).toEqual([0, "", ""]);
    expect(tag("a:latest", "b:1")).toEqual([0, "", ""]); // already its name: nothing changes
    expect(images()).toEqual([[a!, ["a:latest", "b:1"]], [c!, ["c:latest", "example.com/c/d:2.0"]]]);
    expect(inStore(env, ["run", "--rm", "--network", "none", "b:1", "cat", "/other"]).code).toBe(1);
    // the name moves; the image keeps its others
    expect(tag("c", "b:1")).toEqual([0, "", ""]);
    expect(images()).toEqual([[a!, ["a:latest"]], [c!, ["c:latest", "example.com/c/d:2.0", "b:1"]]]);
    expect(inStore(env, ["run", "--rm", "--network", "none", "b:1", "cat", "/other"]).stdout).toBe("other\n");
    expect(tag("nosuch", "x")).toEqual([125, "", "bunker: no such image: nosuch (see 'bunker images')\n"]);
    expect(tag("a", "Bad Name")).toEqual([125, "", `bunker: invalid image name "Bad Name": use lower-case letters and digits, joined by '.', '_' or '-', parts by '/', an optional HOST[:PORT]/ first and :TAG last\n`]);
    const named = inStore(env, ["import", join(w, "a.tar"), "--name", "Bad Name"]); // as import --name
    expect([named.code, named.stderr]).toEqual([125, tag("a", "Bad Name")[2]]);
    expect(tag("a")).toEqual([125, "", "bunker: tag takes an image and a name: bunker tag SOURCE[:TAG]|ID TARGET[:TAG]\n"]);
    expect(images()).toEqual([[a!, ["a:latest"]], [c!, ["c:latest", "example.com/c/d:2.0", "b:1"]]]);
  });

  test("rmi removes a name, and the image with its last one; by id, one of several names only with -f; several at once go on past a failure", async () => {
    const w = workdir();
    const { env, dir } = freshStore();
    const src = rootfsDir(w);
    const archive = await dockerArchive(w, [src], "a:latest", { Cmd: ["true"] });
    expect(inStore(env, ["import", archive]).code).toBe(0);
    expect(inStore(env, ["import", archive, "--name", "b:1"]).code).toBe(0); // the same image: a second name
    sh(`echo other > ${src}/other`);
    expect(inStore(env, ["import", tarOf(src, join(w, "c.tar")), "--name", "c"]).code).toBe(0);
    const images = () => (JSON.parse(inStore(env, ["images", "--json"]).stdout) as { id: string; names: string[] }[]).map((i) => i.names);
    expect(images()).toEqual([["a:latest", "b:1"], ["c:latest"]]);
    const id = (JSON.parse(inStore(env, ["images", "--json"]).stdout) as { id: string }[])[0]!.id;
    // "sha256:" and fewer than 4 hex digits of an id name nothing
    const short = inStore(env, ["rmi", `sha256:${id.slice(7, 10)}`]);
    expect([short.code, short.stdout, short.stderr]).toEqual([125, "", `bunker: no such image: sha256:${id.slice(7, 10)}\n`]);
    const byId = inStore(env, ["rmi", id.slice(7, 19)]);
    expect([byId.code, byId.stdout]).toEqual([125, ""]);
    expect(byId.stderr).toContain("has 2 names (a:latest, b:1)");
    // a name goes, the image stays with its other name
    const untag = inStore(env, ["rmi", "a"]);
    expect([untag.code, untag.stdout, untag.stderr]).toEqual([0, "Untagged: a:latest\n", ""]);
    expect(images()).toEqual([["b:1"], ["c:latest"]]);
    expect(inStore(env, ["run", "--rm", "b:1", "true"]).code).toBe(0);
    // several at once: each failure is one line, the others are done, the status says something failed
    expect(inStore(env, ["run", "--name", "user", "b:1", "true"]).code).toBe(0);
    const several = inStore(env, ["rmi", "nosuch", "c", "b:1"]);
    expect(several.code).toBe(125);
    expect(several.stdout).toMatch(/^Untagged: c:latest\nDeleted: sha256:[0-9a-f]{64}\n$/);
    expect(several.stderr).toBe("bunker: no such image: nosuch\nbunker: image b:1 is used by container user: remove that first ('bunker rm'), or only untag it: 'bunker rmi -f'\n");
    expect(images()).toEqual([["b:1"]]);
    // -f, as Docker's: the image a stopped container uses loses its names and stays, nameless, for it
    expect(inStore(env, ["rmi", "-f", "b:1"]).stdout).toBe("Untagged: b:1\n");
    expect(images()).toEqual([[]]);
    const nameless = inStore(env, ["rmi", "-f", id]);
    expect([nameless.code, nameless.stderr]).toEqual([125, `bunker: image ${id} is used by container user: remove that first ('bunker rm')\n`]);
    expect(inStore(env, ["restart", "user"]).code).toBe(0);
    expect(inStore(env, ["wait", "user"]).stdout).toBe("0\n");
    expect(inStore(env, ["tag", id, "b:1"]).code).toBe(0);
    // inspect: what is found, then a line for each name that is not, and the status says so
    const insp = inStore(env, ["inspect", "--json", "nosuch", "user"]);
    expect([insp.code, (JSON.parse(insp.stdout) as { Name: string }[]).map((c) => c.Name), insp.stderr]).toEqual([
      125,
      ["user"],
      "bunker: no such container or image: nosuch (see 'bunker ps -a' and 'bunker images')\n",
    ]);
    const rm = inStore(env, ["rm", "nosuch", "user"]);
    expect([rm.code, rm.stdout, rm.stderr]).toEqual([125, "user\n", "bunker: no such container: nosuch (see 'bunker ps -a')\n"]);
    expect(inStore(env, ["rmi", "-f", id.slice(7, 19)]).stdout).toBe(`Untagged: b:1\nDeleted: ${id}\n`);
    expect(images()).toEqual([]);
    expect(readdirSync(join(dir, "bunker/layers"))).toEqual([]);
  });

  test("a container name is checked before anything is made: an invalid one leaves no file, in the store's names/ or out of it", () => {
    const w = workdir();
    const { env, dir } = freshStore();
    const rootfs = rootfsDir(w);
    expect(inStore(env, ["import", tarOf(rootfs, join(w, "r.tar")), "--name", "img"]).code).toBe(0);
    for (const name of ["../escaped", "bad name", "a/b"]) {
      const r = inStore(env, ["run", "--rm", "--name", name, "img", "true"]);
      expect([r.code, r.stderr]).toEqual([125, `bunker: invalid container name "${name}": use letters, digits, '_', '.' and '-'\n`]);
    }
    expect(readdirSync(join(dir, "bunker/names"))).toEqual([]);
    expect(existsSync(join(dir, "bunker/escaped"))).toBe(false);
    // a name a container of a directory holds: refused, and the image's store claims nothing for it
    expect(inStore(env, ["run", "-d", "--name", "held", "--network", "none", rootfs, "sleep", "30"]).code).toBe(0);
    const taken = inStore(env, ["run", "--rm", "--name", "held", "img", "true"]);
    expect([taken.code, taken.stderr]).toEqual([125, `bunker: the container name "held" is already in use by container ${taken.stderr.match(/container ([0-9a-f]{12})/)?.[1]}: choose another --name\n`]);
    expect(readdirSync(join(dir, "bunker/names"))).toEqual([]);
    expect(inStore(env, ["rm", "-f", "held"]).code).toBe(0);
  });

  test("restart starts a stopped container again with its changes, also once its runtime state is gone (a foreground run, a reboot)", () => {
    const w = workdir();
    const { env } = freshStore();
    expect(inStore(env, ["import", tarOf(rootfsDir(w), join(w, "r.tar")), "--name", "img"]).code).toBe(0);
    const count = ["/bin/sh", "-c", 'echo x >> /runs; echo "$KEPT $(wc -l < /runs)"'];
    expect(inStore(env, ["run", "--name", "fg", "-e", "KEPT=yes", "img", ...count]).stdout).toBe("yes 1\n");
    for (const [runs, reboot] of [["2", false], ["3", true]] as const) {
      // a reboot empties XDG_RUNTIME_DIR: only the store remembers the container
      if (reboot) rmSync(join(env.XDG_RUNTIME_DIR!, "bunker"), { recursive: true });
      const r = inStore(env, ["restart", "fg"]);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("fg\n");
      expect(inStore(env, ["wait", "fg"]).stdout).toBe("0\n");
      expect(inStore(env, ["logs", "fg"]).stdout).toBe(`yes ${runs}\n`);
    }
    expect(inStore(env, ["exec", "fg", "true"]).stderr).toContain("is not running");
    expect(inStore(env, ["rm", "fg"]).code).toBe(0);
  });

  test("restart runs the image a container was made from, though its name has moved to another image since", () => {
    const w = workdir();
    const { env } = freshStore();
    const src = rootfsDir(w, "echo a > which");
    const a = tarOf(src, join(w, "a.tar"));
    sh(`echo b > ${src}/which`);
    const b = tarOf(src, join(w, "b.tar"));
    expect(inStore(env, ["import", a, "--name", "img"]).code).toBe(0);
    expect(inStore(env, ["run", "--name", "c", "img", "cat", "/which"]).stdout).toBe("a\n");
    // the name moves to another image, as with docker load; the container keeps its own
    expect(inStore(env, ["import", b, "--name", "img"]).code).toBe(0);
    expect(inStore(env, ["run", "--rm", "img", "cat", "/which"]).stdout).toBe("b\n");
    const r = inStore(env, ["restart", "c"]);
    expect([r.code, r.stderr]).toEqual([0, ""]);
    expect(inStore(env, ["wait", "c"]).stdout).toBe("0\n");
    expect(inStore(env, ["logs", "c"]).stdout).toBe("a\n");
    expect(inStore(env, ["rm", "c"]).code).toBe(0);
  });

  test("ps shows the image as the container was started with it, and its id once that name names another image", async () => {
    const w = workdir();
    const { env } = freshStore();
    const archive = await dockerArchive(w, [rootfsDir(w)], "first:1", { Cmd: ["true"] });
    sh(`rm -rf ${w}/rootfs`);
    const imp = inStore(env, ["import", archive, "--name", "second:2"]); // one image, two names
    expect(inStore(env, ["import", archive]).code).toBe(0);
    const id = imp.stdout.trim().split(" ")[1]!.slice(7, 19);
    expect(inStore(env, ["run", "--name", "byname", "second:2", "true"]).code).toBe(0);
    expect(inStore(env, ["run", "--name", "byid", id.slice(0, 6), "true"]).code).toBe(0);
    const images = () => Object.fromEntries((JSON.parse(inStore(env, ["ps", "-a", "--json"]).stdout) as { name: string; image: string }[]).map((c) => [c.name, c.image]));
    expect(images()).toEqual({ byname: "second:2", byid: id.slice(0, 6) });
    expect(inStore(env, ["import", tarOf(rootfsDir(w), join(w, "other.tar")), "--name", "second:2"]).code).toBe(0);
    expect(images()).toEqual({ byname: id, byid: id.slice(0, 6) });
    expect(inStore(env, ["rm", "byname", "byid"]).code).toBe(0);
  });

  test("a store damaged from outside: a missing layer or an index that does not parse is one line, with the way out", () => {
    const w = workdir();
    const { env, dir } = freshStore();
    expect(inStore(env, ["import", tarOf(rootfsDir(w), join(w, "r.tar")), "--name", "img"]).code).toBe(0);
    const store = join(dir, "bunker");
    const way = `move ${store} aside and import the images again`;
    const [layer] = readdirSync(join(store, "layers"));
    renameSync(join(store, "layers", layer!), join(store, "gone"));
    for (const args of [["run", "--rm", "img", "true"], ["export", "img", "-o", join(w, "x.bundle")]]) {
      const r = inStore(env, args);
      expect(r.code).toBe(125);
      expect(r.stderr).toMatch(new RegExp(`^bunker: the image store is damaged: layer sha256:${layer} (of image img:latest )?is missing; ${way}\n$`));
    }
    renameSync(join(store, "gone"), join(store, "layers", layer!));
    expect(inStore(env, ["run", "--rm", "img", "true"]).code).toBe(0);
    writeFileSync(join(store, "images.json"), "{broken");
    const r = inStore(env, ["images"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toStartWith(`bunker: the image store is damaged: ${store}/images.json is not valid JSON (`);
    expect(r.stderr).toEndWith(`); ${way}\n`);
    // a sweep takes no layer for unused on the word of an index it cannot read
    expect(readdirSync(join(store, "layers"))).toEqual([layer!]);
  });

  test("owners: exact with subordinate ranges; kept in metadata with a notice under a one-id map", () => {
    const w = workdir();
    // and modes as the tar says: in a setgid directory, one below that is not setgid (chmod 00755 clears the bit)
    if (!asRoot) return; // making a tar with other owners needs root
    const extra = "echo data > owned && chown 33:33 owned && chmod 4755 owned && mkdir -m 2775 sg && mkdir sg/d && chmod 00755 sg/d && echo x > sg/f && chmod 0640 sg/f";
    const tar = tarOf(rootfsDir(w, extra), join(w, "own.tar"));
    const main = freshStore();
    expect(inStore(main.env, ["import", tar, "--name", "own"]).code).toBe(0);
    expect(inStore(main.env, ["run", "--rm", "own", "stat", "-c", "%u:%g %a", "/owned"]).stdout).toBe("33:33 4755\n");
    expect(inStore(main.env, ["run", "--rm", "own", "stat", "-c", "%n %a", "/sg", "/sg/d", "/sg/f"]).stdout).toBe("/sg 2775\n/sg/d 755\n/sg/f 640\n");
    const single = freshStore(h.single);
    const imp = inStore(single.env, ["import", tar, "--name", "own"], { user: h.single });
    expect(imp.code).toBe(0);
    expect(imp.stderr).toContain("files belong to other users than root, which a one-id map cannot hold");
    // setuid means nothing without the owner: it is stripped, and kept in the store's metadata
    expect(inStore(single.env, ["run", "--rm", "own", "stat", "-c", "%u:%g %a", "/owned"], { user: h.single }).stdout).toBe("0:0 755\n");
  });
});

/** docker save's format: a directory per layer, a config, manifest.json (written last). */
async function dockerArchive(w: string, dirs: string[], tag: string, config: object, top: object = {}): Promise<string> {
  const out = join(w, "archive");
  mkdirSync(out, { recursive: true });
  const diffIds: string[] = [];
  const paths: string[] = [];
  for (const [i, dir] of dirs.entries()) {
    const tar = tarOf(dir, join(w, `d${i}.tar`));
    const id = await sha256(tar);
    diffIds.push(`sha256:${id}`);
    mkdirSync(join(out, id), { recursive: true }); // an image may repeat a layer
    sh(`cp ${tar} ${join(out, id, "layer.tar")}`);
    paths.push(`${id}/layer.tar`);
  }
  const text = JSON.stringify({ architecture: "amd64", os: "linux", ...top, config, rootfs: { type: "layers", diff_ids: diffIds } });
  const configId = new Bun.CryptoHasher("sha256").update(text).digest("hex");
  writeFileSync(join(out, `${configId}.json`), text);
  writeFileSync(join(out, "manifest.json"), JSON.stringify([{ Config: `${configId}.json`, RepoTags: [tag], Layers: paths }]));
  const tar = join(w, "docker-archive.tar");
  sh(`tar -C ${out} -cf ${tar} $(ls ${out} | grep -v manifest.json) manifest.json && chmod 644 ${tar}`);
  return tar;
}

/** An OCI image layout directory, with gzip layers. */
async function ociLayout(w: string, dirs: string[], ref: string, config: object): Promise<string> {
  const out = join(w, "oci");
  const blobs = join(out, "blobs/sha256");
  mkdirSync(blobs, { recursive: true });
  const put = async (file: string) => {
    const d = await sha256(file);
    sh(`cp ${file} ${join(blobs, d)}`);
    return { digest: `sha256:${d}`, size: Bun.file(file).size };
  };
  const putJson = async (name: string, value: object) => {
    writeFileSync(join(w, name), JSON.stringify(value));
    return put(join(w, name));
  };
  const layers = [];
  const diffIds = [];
  for (const [i, dir] of dirs.entries()) {
    const tar = tarOf(dir, join(w, `o${i}.tar`));
    diffIds.push(`sha256:${await sha256(tar)}`);
    sh(`gzip -n -k ${tar}`);
    layers.push({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...(await put(`${tar}.gz`)) });
  }
  const cfg = await putJson("config.json", { architecture: "amd64", os: "linux", config, rootfs: { type: "layers", diff_ids: diffIds } });
  const manifest = await putJson("manifest.json", {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...cfg },
    layers,
  });
  writeFileSync(join(out, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const index = { schemaVersion: 2, manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", ...manifest, annotations: { "org.opencontainers.image.ref.name": ref } }] };
  writeFileSync(join(out, "index.json"), JSON.stringify(index));
  sh(`chmod -R a+rX ${out}`);
  return out;
}

describe("image archives", () => {
  // the rootfs, then a layer that adds files, then one that deletes a file
  // (a whiteout) and empties a directory (an opaque marker)
  function layers(w: string): string[] {
    return [
      rootfsDir(w),
      layerDir(w, "add", { "etc/keep": "keep\n", "etc/gone": "gone\n", "data/a": "a\n", "data/b": "b\n" }),
      layerDir(w, "change", { "etc/.wh.gone": "", "data/.wh..wh..opq": "", "data/c": "c\n", "work/.keep": "" }),
    ];
  }

  test("images shows when an image was made, as its config says (Docker's CREATED), and when it was imported", async () => {
    const w = workdir();
    const archive = await dockerArchive(w, [rootfsDir(w)], "dated:1", { Cmd: ["true"] }, { created: "2020-01-02T03:04:05.123456789Z" });
    const { env } = freshStore();
    const before = new Date().toISOString();
    expect(inStore(env, ["import", archive]).code).toBe(0);
    const [img] = JSON.parse(inStore(env, ["images", "--json"]).stdout);
    expect(img.created).toBe("2020-01-02T03:04:05.123Z");
    expect(img.imported >= before).toBe(true);
    expect(inStore(env, ["images"]).stdout).toContain(" 2020-01-02 03:04:05 ");
  });

  test("a docker-archive of other names (config.json first, then layer.tar) is one, from a file or a pipe, and named as given; a root filesystem that begins with a JSON file is one", async () => {
    const w = workdir();
    const dir = join(w, "handmade");
    mkdirSync(dir);
    const layer = tarOf(rootfsDir(w), join(dir, "layer.tar"));
    const config = { architecture: "amd64", os: "linux", config: { Cmd: ["/bin/sh", "-c", "echo handmade"] }, rootfs: { type: "layers", diff_ids: [`sha256:${await sha256(layer)}`] } };
    writeFileSync(join(dir, "config.json"), JSON.stringify(config));
    writeFileSync(join(dir, "manifest.json"), JSON.stringify([{ Config: "config.json", RepoTags: ["hand/made:1"], Layers: ["layer.tar"] }]));
    const archive = join(w, "handmade.tar");
    sh(`tar -C ${dir} -cf ${archive} config.json layer.tar manifest.json && gzip -k ${archive} && chmod 644 ${archive} ${archive}.gz`);
    for (const input of [archive, `${archive}.gz`]) {
      const { env } = freshStore();
      expect(inStore(env, ["import", input]).stdout).toMatch(/^hand\/made:1 sha256:/);
      expect(inStore(env, ["run", "--rm", "hand/made:1"]).stdout).toBe("handmade\n");
      expect(JSON.parse(inStore(env, ["inspect", "--json", "hand/made:1"]).stdout)[0].Source).toBe(input);
    }
    // through a pipe: the source is the standard input, not the copy kept in the store's tmp/
    const { env, dir: store } = freshStore();
    const r = Bun.spawnSync(asUser(["sh", "-c", `gzip -dc ${archive}.gz | "$0" import -`, h.bin], { env }), { stdout: "pipe", stderr: "pipe" });
    expect([r.exitCode, r.stderr.toString()]).toEqual([0, ""]);
    expect(JSON.parse(inStore(env, ["inspect", "--json", "hand/made:1"]).stdout)[0].Source).toBe("the standard input");
    expect(readdirSync(join(store, "bunker/tmp"))).toEqual([]); // the copy is gone
    // a root filesystem whose first entry is a JSON file, with no manifest.json: a root filesystem
    const w2 = workdir();
    const src = rootfsDir(w2, "echo '{}' > notes.json");
    const rootfs = join(w2, "notes.tar");
    sh(`cd ${src} && tar --numeric-owner -cf ${rootfs} notes.json $(ls | grep -v notes.json) && chmod 644 ${rootfs}`);
    const other = freshStore();
    expect(inStore(other.env, ["import", rootfs, "--name", "notes"]).stderr).toBe("");
    expect(inStore(other.env, ["run", "--rm", "notes", "cat", "/notes.json"]).stdout).toBe("{}\n");
    // one that begins with a manifest.json of its own is taken for a docker archive: refused, saying how to pack it
    const w3 = workdir();
    const mine = rootfsDir(w3, "echo '{\"name\":\"web\"}' > manifest.json");
    const first = join(w3, "manifest-first.tar");
    sh(`cd ${mine} && tar --numeric-owner -cf ${first} manifest.json $(ls | grep -v manifest.json) && chmod 644 ${first}`);
    const refused = inStore(other.env, ["import", first]);
    expect([refused.code, refused.stderr]).toEqual([125, `bunker: ${first}: manifest.json lists no images (a root filesystem tar that begins with a manifest.json of its own is taken for a docker archive: pack it with another entry first)\n`]);
  });

  test("a docker-archive with whiteouts and an opaque directory", async () => {
    const w = workdir();
    const archive = await dockerArchive(w, layers(w), "demo:1", { Cmd: ["/bin/sh", "-c", "echo from-cmd"], Env: ["PATH=/bin", "FROM_IMAGE=yes"], WorkingDir: "/work" });
    const { env } = freshStore();
    const imp = inStore(env, ["import", archive]);
    expect(imp.stderr).toBe("");
    expect(imp.stdout).toMatch(/^demo:1 sha256:/);
    expect(inStore(env, ["run", "--rm", "demo:1"]).stdout).toBe("from-cmd\n");
    const look = inStore(env, ["run", "--rm", "demo:1", "/bin/sh", "-c", "pwd; echo $FROM_IMAGE; cat /etc/keep; ls /etc/gone 2>/dev/null | wc -l; ls /data"]);
    expect(look.stderr).toBe("");
    expect(look.stdout).toBe("/work\nyes\nkeep\n0\nc\n");
  });

  test("an image's declared volumes are there, as Docker makes them, also when the image lacks the directory", async () => {
    const w = workdir();
    const archive = await dockerArchive(w, [rootfsDir(w, "mkdir -p srv/state && echo seed > srv/state/f")], "vol:1", { Cmd: ["true"], Volumes: { "/data": {}, "/srv/state": {} } });
    const { env } = freshStore();
    expect(inStore(env, ["import", archive]).code).toBe(0);
    const r = inStore(env, ["run", "--rm", "--network", "none", "vol:1", "sh", "-c", "stat -c '%n %u %a' /data; cat /srv/state/f; touch /data/x && echo written"]);
    expect([r.code, r.stderr]).toEqual([0, ""]);
    expect(r.stdout).toBe("/data 0 755\nseed\nwritten\n");
  });

  test("under --read-only an image's declared volumes stay writable, as Docker's; one that is a symlink to /proc binds nothing", async () => {
    const w = workdir();
    const archive = await dockerArchive(w, [rootfsDir(w, "mkdir -p srv/state && echo seed > srv/state/f && ln -s /proc psys")], "vol:1", { Cmd: ["true"], Volumes: { "/data": {}, "/srv/state": {}, "/psys": {} } });
    const { env } = freshStore();
    expect(inStore(env, ["import", archive]).code).toBe(0);
    const r = inStore(env, ["run", "--rm", "--read-only", "--network", "none", "vol:1", "sh", "-c", "touch /data/x /srv/state/g && cat /srv/state/f; touch /etc/x 2>/dev/null || echo root read-only; grep -c ' /proc proc ' /proc/mounts"]);
    expect([r.code, r.stderr]).toEqual([0, ""]);
    expect(r.stdout).toBe("seed\nroot read-only\n1\n");
  });

  test("a container moved as a bundle: its default host name stays behind, --entrypoint \"\" needs a command, and -u looks HOME up again", async () => {
    const w = workdir();
    const passwd = "echo 'app:x:1234:2345::/home/app:/bin/sh' >> etc/passwd";
    const archive = await dockerArchive(w, [rootfsDir(w, passwd)], "ep:2", { Entrypoint: ["/bin/echo", "ep"], Cmd: ["c1"], User: "app" });
    const a = freshStore();
    expect(inStore(a.env, ["import", archive]).code).toBe(0);
    expect(inStore(a.env, ["run", "--name", "c", "--network", "none", "ep:2"]).stdout).toBe("ep c1\n");
    const out = join(w, "out");
    mkdirSync(out);
    chmodSync(out, 0o777);
    expect(inStore(a.env, ["export", "c", "-o", join(out, "c.bundle")]).code).toBe(0);
    const b = freshStore();
    expect(inStore(b.env, ["import", join(out, "c.bundle"), "--name", "moved"]).code).toBe(0);
    expect(inStore(b.env, ["run", "--rm", "--network", "none", "moved"]).stdout).toBe("ep c1\n");
    const none = inStore(b.env, ["run", "--rm", "--network", "none", "--entrypoint", "", "moved"]);
    expect([none.code, none.stderr]).toEqual([125, `bunker: --entrypoint "" runs neither the image's Entrypoint nor its Cmd: give a command after the image name\n`]);
    const home = (user: string[]) => inStore(b.env, ["run", "--rm", "--network", "none", ...user, "--entrypoint", "/bin/sh", "moved", "-c", 'echo "$(id -u) $HOME"']).stdout;
    expect([home([]), home(["-u", "0"])]).toEqual(["1234 /home/app\n", "0 /root\n"]);
    const r = inStore(b.env, ["run", "--name", "h", "--network", "none", "--entrypoint", "/bin/sh", "moved", "-c", 'hostname; echo "$HOSTNAME"']);
    const id = (JSON.parse(inStore(b.env, ["ps", "-a", "--json"]).stdout) as { id: string; name: string }[]).find((c) => c.name === "h")!.id;
    expect(r.stdout).toBe(`${id.slice(0, 12)}\n${id.slice(0, 12)}\n`);
  });

  test("an image moved as a bundle keeps its Entrypoint when a command is given, as the image it was made from", async () => {
    const w = workdir();
    const archive = await dockerArchive(w, [rootfsDir(w)], "ep:1", { Entrypoint: ["/bin/echo", "ep"], Cmd: ["cmd"] });
    const a = freshStore();
    expect(inStore(a.env, ["import", archive]).code).toBe(0);
    const out = join(w, "out");
    mkdirSync(out);
    chmodSync(out, 0o777);
    expect(inStore(a.env, ["export", "ep:1", "-o", join(out, "ep.bundle")]).code).toBe(0);
    // an image has no host name, nor $HOSTNAME, of its own
    const config = JSON.parse(Bun.spawnSync(["tar", "--zstd", "-xOf", join(out, "ep.bundle"), "config.json"], { stdout: "pipe" }).stdout.toString());
    expect([config.hostname, config.process.env.filter((e: string) => e.startsWith("HOSTNAME="))]).toEqual([undefined, []]);
    const b = freshStore();
    expect(inStore(b.env, ["import", join(out, "ep.bundle"), "--name", "moved"]).code).toBe(0);
    for (const env of [a.env, b.env]) {
      const image = env === a.env ? "ep:1" : "moved";
      expect(inStore(env, ["run", "--rm", "--network", "none", image]).stdout).toBe("ep cmd\n");
      expect(inStore(env, ["run", "--rm", "--network", "none", image, "x"]).stdout).toBe("ep x\n");
      expect(inStore(env, ["run", "--rm", "--network", "none", "--entrypoint", "/bin/echo", image, "y"]).stdout).toBe("y\n");
      // an image names no hostname: each container's is its own id, on either host
      for (const name of ["h1", "h2"]) {
        const r = inStore(env, ["run", "--name", name, "--network", "none", "--entrypoint", "/bin/sh", image, "-c", 'hostname; echo "$HOSTNAME"']);
        const id = (JSON.parse(inStore(env, ["ps", "-a", "--json"]).stdout) as { id: string; name: string }[]).find((c) => c.name === name)!.id;
        expect(r.stdout).toBe(`${id.slice(0, 12)}\n${id.slice(0, 12)}\n`);
        expect(inStore(env, ["rm", name]).code).toBe(0);
      }
    }
  });

  test("an image's StopSignal is what stop sends, a real-time one too (systemd's SIGRTMIN+3); one that is no signal is refused at run", async () => {
    const w = workdir();
    const { env } = freshStore();
    const loop = "trap 'exit 5' 37; while :; do sleep 0.1; done";
    expect(inStore(env, ["import", await dockerArchive(w, [rootfsDir(w)], "rt:latest", { Cmd: ["/bin/sh", "-c", loop], StopSignal: "SIGRTMIN+3" })]).code).toBe(0);
    expect(inStore(env, ["import", await dockerArchive(w, [rootfsDir(w)], "badsig:latest", { Cmd: ["true"], StopSignal: "SIGFOO" })]).code).toBe(0);
    expect(inStore(env, ["run", "-d", "--name", "rt", "--network", "none", "rt"]).code).toBe(0);
    await Bun.sleep(300); // its trap set
    expect(inStore(env, ["stop", "-t", "20", "rt"])).toMatchObject({ code: 0, stderr: "" });
    expect(inStore(env, ["wait", "rt"]).stdout).toBe("5\n"); // its trap's status, not SIGKILL's 137
    const bad = inStore(env, ["run", "--name", "bad", "--network", "none", "badsig"]);
    expect([bad.code, bad.stderr]).toEqual([125, 'bunker: the image\'s StopSignal "SIGFOO" is not a signal: bunker stop could not stop its container\n']);
    expect(inStore(env, ["ps", "-a"]).stdout.split("\n").filter((l) => l.endsWith(" bad"))).toEqual([]); // nothing made
  });

  test("inspect shows an image's config as docker image inspect does; a container of the same name comes first, and --type picks", async () => {
    const w = workdir();
    const config = { Entrypoint: ["/bin/echo", "ep"], Cmd: ["cmd"], Env: ["A=1"], Labels: { "org.example.x": "y" }, StopSignal: "SIGINT", WorkingDir: "/tmp" };
    const archive = await dockerArchive(w, [rootfsDir(w)], "same:latest", config);
    const { env } = freshStore();
    expect(inStore(env, ["import", archive]).code).toBe(0);
    const id = (JSON.parse(inStore(env, ["images", "--json"]).stdout) as { id: string }[])[0]!.id;
    const image = inStore(env, ["inspect", "--json", "same"]);
    expect([image.code, image.stderr]).toEqual([0, ""]);
    const [d] = JSON.parse(image.stdout) as { Id: string; RepoTags: string[]; Config: object; RootFS: { Layers: string[] } }[];
    expect([d!.Id, d!.RepoTags, d!.RootFS.Layers.length]).toEqual([id, ["same:latest"], 1]);
    expect(d!.Config).toEqual({ ...config, User: "", Volumes: null });
    const text = inStore(env, ["inspect", id.slice(7, 19)]).stdout;
    expect(text).toContain(`ID:         ${id}\nNames:      same:latest\n`);
    expect(text).toContain('Entrypoint: ["/bin/echo","ep"]\nCmd:        ["cmd"]\nWorkingDir: /tmp\nUser:       -\nEnv:        A=1\nLabel:      org.example.x=y\nStopSignal: SIGINT\n');
    // a container named as the image: Docker's inspect shows the container, --type image the image
    expect(inStore(env, ["run", "--name", "same", "-h", "myhost", "-e", "FOO=bar", "-u", "33:33", "--network", "none", "same"]).stdout).toBe("ep cmd\n");
    const both = (args: string[]) => (JSON.parse(inStore(env, ["inspect", "--json", ...args]).stdout) as { Id: string; Name?: string }[]).map((o) => o.Name ?? o.Id);
    expect(both(["same"])).toEqual(["same"]);
    // stopped, its runtime state gone: the config it was made with
    const stopped = JSON.parse(inStore(env, ["inspect", "--json", "same"]).stdout)[0].Config;
    expect(stopped).toMatchObject({ Hostname: "myhost", User: "33:33", Cmd: ["/bin/echo", "ep", "cmd"], WorkingDir: "/tmp", Image: "same", Labels: { "org.example.x": "y" }, StopSignal: "SIGINT" });
    expect(stopped.Env).toEqual(expect.arrayContaining(["A=1", "FOO=bar", "HOSTNAME=myhost"]));
    expect(both(["--type", "image", "same"])).toEqual([id]);
    expect(both(["--type", "container", "same"])).toEqual(["same"]);
    const none = inStore(env, ["inspect", "--type", "container", id]);
    expect([none.code, none.stdout, none.stderr]).toEqual([125, "", `bunker: no such container: ${id} (see 'bunker ps -a')\n`]);
    const bad = inStore(env, ["inspect", "--type", "volume", "same"]);
    expect([bad.code, bad.stderr]).toEqual([125, 'bunker: inspect --type takes container or image, not "volume"\n']);
  });

  test("an image that repeats a layer runs, on an overlay and on a copy, and exports", async () => {
    const w = workdir();
    const same = join(w, "same");
    const other = join(w, "other");
    sh(`mkdir -p ${same} ${other} && echo s > ${same}/same && echo o > ${other}/other && touch ${other}/same.not`);
    // docker keeps layers by their place in the chain: [base, same, other, same]
    const archive = await dockerArchive(w, [rootfsDir(w), same, other, same], "dup:1", { Cmd: ["/bin/sh", "-c", "cat /same /other"] });
    const { env } = freshStore();
    expect(inStore(env, ["import", archive]).code).toBe(0);
    for (const storage of [{}, { BUNKER_STORAGE: "copy" }] as Record<string, string>[]) {
      const r = inStore(env, ["run", "--rm", "--network", "none", "dup:1"], { env: storage });
      expect([r.code, r.stdout]).toEqual([0, "s\no\n"]);
    }
    const out = mkdtempSync(join(w, "out-"));
    chmodSync(out, 0o777);
    expect(inStore(env, ["export", "dup:1", "-o", join(out, "dup.bundle")]).code).toBe(0);
    expect(Bun.spawnSync(["tar", "-tf", join(out, "dup.bundle"), "rootfs/same", "rootfs/other"]).stdout.toString()).toBe("rootfs/same\nrootfs/other\n");
  });

  test("go-containerregistry's tarball (crane pull): its config first, named sha256:HEX, and gzip layers; cut short, its spooled copy goes", async () => {
    const w = workdir();
    const out = join(w, "ggcr");
    mkdirSync(out);
    const layer = tarOf(rootfsDir(w, "echo ggcr > hello"), join(w, "l.tar"));
    sh(`gzip -c ${layer} > ${out}/l.gz`);
    const gz = `${await sha256(join(out, "l.gz"))}.tar.gz`;
    renameSync(join(out, "l.gz"), join(out, gz));
    const text = JSON.stringify({ architecture: "amd64", os: "linux", config: { Cmd: ["/bin/cat", "/hello"] }, rootfs: { type: "layers", diff_ids: [`sha256:${await sha256(layer)}`] } });
    const cfg = `sha256:${new Bun.CryptoHasher("sha256").update(text).digest("hex")}`;
    writeFileSync(join(out, cfg), text);
    writeFileSync(join(out, "manifest.json"), JSON.stringify([{ Config: cfg, RepoTags: ["ggcr:1"], Layers: [gz] }]));
    sh(`tar -C ${out} -cf ${w}/ggcr.tar ${cfg} ${gz} manifest.json && chmod 644 ${w}/ggcr.tar`);
    const a = freshStore();
    const r = inStore(a.env, ["import", `${w}/ggcr.tar`]);
    expect([r.code, r.stdout, r.stderr]).toEqual([0, `ggcr:1 ${cfg}\n`, ""]);
    expect(inStore(a.env, ["run", "--rm", "--network", "none", "ggcr:1"]).stdout).toBe("ggcr\n");
    // the archive gzipped whole and cut short: decompressed into the store's tmp/ to be read, and gone with the refusal
    sh(`gzip -c ${w}/ggcr.tar | head -c 300000 > ${w}/cut.tar.gz && chmod 644 ${w}/cut.tar.gz`);
    const b = freshStore();
    const cut = inStore(b.env, ["import", `${w}/cut.tar.gz`]);
    expect([cut.code, cut.stderr]).toEqual([125, `bunker: ${w}/cut.tar.gz: the gzip stream is corrupt or truncated: unexpected end of file\n`]);
    noDebris(b.dir);
  });

  test("--name with an archive of several images is refused (it would name one and leave the others nameless)", async () => {
    const w = workdir();
    const base = rootfsDir(w);
    const one = await dockerArchive(join(w, "1"), [base], "one:1", { Cmd: ["echo", "one"] });
    const two = await dockerArchive(join(w, "2"), [base], "two:1", { Cmd: ["echo", "two"] });
    // both in one archive, as `docker save one:1 two:1` writes it
    const both = join(w, "both");
    sh(`mkdir ${both} && tar -C ${both} -xf ${one} && tar -C ${both} --skip-old-files -xf ${two} 2>/dev/null; true`);
    const manifest = [...JSON.parse(readFileSync(join(w, "1/archive/manifest.json"), "utf8")), ...JSON.parse(readFileSync(join(w, "2/archive/manifest.json"), "utf8"))];
    writeFileSync(join(both, "manifest.json"), JSON.stringify(manifest));
    sh(`tar -C ${both} -cf ${w}/both.tar . && chmod 644 ${w}/both.tar`);
    const { env, dir } = freshStore();
    const r = inStore(env, ["import", `${w}/both.tar`, "--name", "mine"]);
    expect([r.code, r.stderr]).toEqual([125, `bunker: ${w}/both.tar: it holds 2 images, and --name names one: import it without --name to keep the names it gives them\n`]);
    noDebris(dir);
    const ok = inStore(env, ["import", `${w}/both.tar`]);
    expect(ok.stdout).toMatch(/^one:1 sha256:[0-9a-f]{64}\ntwo:1 sha256:[0-9a-f]{64}\n$/);
    expect(inStore(env, ["run", "--rm", "--network", "none", "two:1"]).stdout).toBe("two\n");
  });

  test("-u NAME reads /etc/passwd as the overlay shows it: a whiteout or an opaque /etc above hides a lower one", async () => {
    const w = workdir();
    const base = rootfsDir(w, "echo 'alice:x:1234:1234::/home/alice:/bin/sh' >> etc/passwd");
    const cases: [string, Record<string, string>][] = [
      ["whiteout", { "etc/.wh.passwd": "" }],
      ["opaque", { "etc/.wh..wh..opq": "", "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "etc/group": "root:x:0:\n" }],
      ["opaque-without", { "etc/.wh..wh..opq": "", "etc/group": "root:x:0:\n" }], // no passwd of its own: the lower one is hidden all the same
    ];
    for (const [name, files] of cases) {
      const archive = await dockerArchive(join(w, name), [base, layerDir(join(w, name), "top", files)], `hide-${name}:1`, { Cmd: ["id"] });
      const { env } = freshStore();
      expect(inStore(env, ["import", archive]).code).toBe(0);
      const r = inStore(env, ["run", "--rm", "--network", "none", "-u", "alice", `hide-${name}:1`, "id", "-u"]);
      expect([r.code, r.stderr.trim()]).toEqual([125, "bunker: unable to find user alice: no matching entries in the container's /etc/passwd"]);
    }
    // and without the top layer, alice is there
    const archive = await dockerArchive(join(w, "plain"), [base], "plain:1", { Cmd: ["id"] });
    const { env } = freshStore();
    expect(inStore(env, ["import", archive]).code).toBe(0);
    expect(inStore(env, ["run", "--rm", "--network", "none", "-u", "alice", "plain:1", "id", "-u"]).stdout).toBe("1234\n");
  });

  test("without overlayfs (BUNKER_STORAGE=copy, as on Linux < 5.11): a copy of the image, whiteouts applied, changes kept and exported", async () => {
    const w = workdir();
    const archive = await dockerArchive(w, layers(w), "demo:copy", { Cmd: ["/bin/sh"] });
    const { env, dir } = freshStore();
    const copy = { ...env, BUNKER_STORAGE: "copy" };
    expect(inStore(env, ["import", archive]).code).toBe(0);
    const r = inStore(copy, ["run", "--name", "copied", "--network", "none", "demo:copy", "/bin/sh", "-c",
      "grep ' / ' /proc/mounts | cut -d' ' -f3; cat /etc/keep; ls /etc/gone 2>/dev/null | wc -l; ls /data; echo changed > /etc/keep; chown 33:33 /etc/keep"]);
    expect(r.stderr).toMatch(/^bunker: BUNKER_STORAGE=copy: container [0-9a-f]{12} gets its own copy of the image \([\d.]+ MB\) instead of an overlay\n$/);
    const [fs, keep, gone, data] = r.stdout.trim().split("\n");
    expect(fs).not.toBe("overlay");
    expect([keep, gone, data]).toEqual(["keep", "0", "c"]);
    // the change is the container's, not the image's
    expect(inStore(copy, ["run", "--rm", "--network", "none", "demo:copy", "cat", "/etc/keep"]).stdout).toBe("keep\n");
    const listing = exportListing(env, w, "copied");
    expect(listing).toMatch(/ 33\/33 +8 .* rootfs\/etc\/keep\n/);
    expect(inStore(env, ["rm", "copied"]).code).toBe(0);
    expect(readdirSync(join(dir, "bunker/containers"))).toEqual([]);
  });

  /** `bunker export NAME` into w, and GNU tar's verbose listing of the bundle, owners as numbers. */
  function exportListing(env: Record<string, string>, w: string, name: string): string {
    const out = join(w, `${name}.bundle`);
    chmodSync(w, 0o777); // the test user writes the bundle here
    const exp = inStore(env, ["export", name, "-o", out]);
    expect([exp.code, exp.stderr]).toEqual([0, ""]);
    chmodSync(out, 0o644);
    return Bun.spawnSync(["tar", "--numeric-owner", "-tvf", out], { stdout: "pipe" }).stdout.toString();
  }

  const fuseTool = ["/usr/bin/fuse-overlayfs", "/bin/fuse-overlayfs"].find((p) => existsSync(p));
  test.skipIf(!fuseTool || !existsSync("/dev/fuse"))(
    "with fuse-overlayfs (BUNKER_STORAGE=fuse-overlayfs, as on Linux < 5.11 where it is installed): whiteouts and opaque directories both ways, out of the container's sight, gone after, kept on restart, exported",
    async () => {
      const w = workdir();
      const archive = await dockerArchive(w, layers(w), "demo:fuse", { Cmd: ["/bin/sh"] });
      // a store whose path has a space and goes through a symlink: mountinfo shows the mount point escaped and resolved
      const { env: base, dir: real } = freshStore();
      const spaced = join(real, "with space");
      mkdirSync(spaced);
      symlinkSync(spaced, join(w, "store-link"));
      if (asRoot) sh(`chown -h ${h.main.uid}:${h.main.gid} '${spaced}' ${join(w, "store-link")}`);
      const env = { ...base, XDG_DATA_HOME: join(w, "store-link") };
      const fuse = { ...env, BUNKER_STORAGE: "fuse-overlayfs" };
      const daemons = () =>
        Bun.spawnSync(["ps", "-u", String(h.main.uid), "-o", "stat=,comm="]).stdout.toString().split("\n").filter((l) => /^[^Z]\S*\s+fuse-overlayfs/.test(l.trim()));
      const logs = () => inStore(env, ["logs", "fused"]).stdout.trim().split("\n");
      const until = async (what: () => boolean) => {
        for (let i = 0; i < 200 && !what(); i++) await Bun.sleep(50);
        expect(what()).toBe(true);
      };
      expect(inStore(env, ["import", archive]).code).toBe(0);
      const script =
        "grep ' / ' /proc/mounts | cut -d' ' -f3; cat /etc/keep; ls /etc/gone 2>/dev/null | wc -l; echo data: $(ls /data); cat /proc/[0-9]*/comm | grep -c fuse; " +
        "echo changed > /etc/keep; chown 33:33 /etc/keep; rm -f /data/c; rm -r /work; mkdir /work; echo w > /work/new; echo ready; sleep 100";
      const r = inStore(fuse, ["run", "-d", "--name", "fused", "--network", "none", "demo:fuse", "/bin/sh", "-c", script]);
      expect([r.code, r.stderr]).toEqual([0, ""]);
      await until(() => logs().includes("ready"));
      expect(logs()).toEqual(["fuse.fuse-overlayfs", "keep", "0", "data: c", "0", "ready"]); // nothing inside sees fuse-overlayfs
      expect(daemons()).toHaveLength(1); // the stage's helper, in the host's pid namespace
      expect(inStore(env, ["kill", "fused"]).code).toBe(0);
      expect(inStore(env, ["wait", "fused"]).stdout).toBe("137\n");
      expect(daemons()).toEqual([]); // stopped with the container
      // restarted: on fuse-overlayfs again, without BUNKER_STORAGE, and its changes are there
      expect(inStore(env, ["restart", "fused"]).code).toBe(0);
      await until(() => logs().filter((l) => l === "ready").length === 2);
      expect(logs().slice(6)).toEqual(["fuse.fuse-overlayfs", "changed", "0", "data:", "0", "ready"]);
      expect(inStore(env, ["kill", "fused"]).code).toBe(0);
      expect(inStore(env, ["wait", "fused"]).stdout).toBe("137\n");
      // the change is the container's, not the image's
      expect(inStore(fuse, ["run", "--rm", "--network", "none", "demo:fuse", "cat", "/etc/keep"]).stdout).toBe("keep\n");
      // exported as it sees itself: the whiteout and the opaque directory applied
      const listing = exportListing(env, w, "fused");
      expect(listing).toMatch(/ 33\/33 +8 .* rootfs\/etc\/keep\n/);
      const names = listing.split("\n").map((l) => l.split(" ").pop()!);
      expect(names.filter((n) => /^rootfs\/(data|work)\//.test(n)).sort()).toEqual(["rootfs/data/", "rootfs/work/", "rootfs/work/new"]);
      expect(names.some((n) => n.includes(".wh."))).toBe(false);
      // an image, where the kernel's overlayfs is not to be had, is read through fuse-overlayfs too
      const image = join(w, "image.bundle");
      expect(inStore(fuse, ["export", "demo:fuse", "-o", image]).code).toBe(0);
      chmodSync(image, 0o644);
      const imageNames = Bun.spawnSync(["tar", "-tf", image], { stdout: "pipe" }).stdout.toString().split("\n");
      expect(imageNames.filter((n) => /^rootfs\/(data|work|etc\/(keep|gone))/.test(n)).sort()).toEqual(["rootfs/data/", "rootfs/data/c", "rootfs/etc/keep", "rootfs/work/", "rootfs/work/.keep"]);
      expect(daemons()).toEqual([]);
      expect(inStore(env, ["rm", "fused"]).code).toBe(0);
      expect(readdirSync(join(spaced, "bunker/containers"))).toEqual([]);
    },
  );

  test.skipIf(!existsSync("/dev/fuse"))("a fuse-overlayfs that fails says why, and one that dies takes the container with it", async () => {
    const w = workdir();
    const archive = await dockerArchive(w, layers(w), "demo:fake", { Cmd: ["/bin/sh"] });
    const { env } = freshStore();
    expect(inStore(env, ["import", archive]).code).toBe(0);
    // stand-ins on PATH, named fuse-overlayfs: one that refuses, one that "mounts" nothing and dies
    const bin = join(w, "bin");
    mkdirSync(bin);
    const fake = (body: string) => {
      writeFileSync(join(bin, "fuse-overlayfs"), `#!/bin/sh\n[ "$1" = --version ] && { echo "fuse-overlayfs: version 1.10"; exit 0; }\n${body}\n`);
      chmodSync(join(bin, "fuse-overlayfs"), 0o755);
    };
    chmodSync(w, 0o755);
    const fuse = { ...env, BUNKER_STORAGE: "fuse-overlayfs", PATH: `${bin}:/usr/bin:/bin` };
    fake('echo "fuse: device not found, try modprobe fuse first" >&2; exit 1');
    const r = inStore(fuse, ["run", "--rm", "--network", "none", "demo:fake", "true"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/^bunker: mount the image's layers \(fuse-overlayfs\) on \S+: exited with status 1: fuse: device not found, try modprobe fuse first\n$/);
    // it mounts (a tmpfs, here), then dies while the container runs: the container goes too, and the reason is said
    fake('for at; do :; done; /bin/mount -t tmpfs none "$at" || exit 9; /bin/sleep 1; echo "lost the connection to the kernel" >&2; exit 3');
    const started = Date.now();
    const d = inStore(fuse, ["run", "--rm", "--network", "none", "-v", `${h.main.rootfs}/bin/busybox:/busybox:ro`, "demo:fake", "/busybox", "sleep", "30"]);
    expect(d.code).toBe(137);
    expect(d.stderr).toMatch(/^bunker: mount the image's layers \(fuse-overlayfs\) on \S+: exited with status 3: lost the connection to the kernel\n$/);
    expect(Date.now() - started).toBeLessThan(20_000);
  });
  test("an OCI layout, as a directory and as a tar: gzip layers, shared layers", async () => {
    const w = workdir();
    const oci = await ociLayout(w, layers(w), "example.com/demo:2", { Entrypoint: ["/bin/echo", "entry"] });
    const { env, dir } = freshStore();
    const imp = inStore(env, ["import", oci]);
    expect(imp.stderr).toBe("");
    expect(imp.stdout).toMatch(/^example.com\/demo:2 sha256:/);
    expect(inStore(env, ["run", "--rm", "example.com/demo:2", "arg"]).stdout).toBe("entry arg\n");
    // the same layout as a tar (podman save --format oci-archive), under another name
    const tar = join(w, "oci.tar");
    sh(`tar -C ${oci} -cf ${tar} . && chmod 644 ${tar}`);
    expect(inStore(env, ["import", tar, "--name", "other:x"]).code).toBe(0);
    const images = JSON.parse(inStore(env, ["images", "--json"]).stdout);
    expect(images.flatMap((i: { names: string[] }) => i.names).sort()).toEqual(["example.com/demo:2", "other:x"]);
    expect(readdirSync(join(dir, "bunker/layers"))).toHaveLength(3); // not six
  });

  test("a corrupt layer is refused before anything becomes visible", async () => {
    const w = workdir();
    const oci = await ociLayout(w, layers(w), "example.com/demo:2", { Cmd: ["true"] });
    const blobs = join(oci, "blobs/sha256");
    const biggest = readdirSync(blobs).sort((a, b) => Bun.file(join(blobs, b)).size - Bun.file(join(blobs, a)).size)[0]!;
    const bytes = new Uint8Array(await Bun.file(join(blobs, biggest)).arrayBuffer());
    bytes[bytes.length - 20] ^= 0xff; // inside the gzip trailer's CRC: decompression or the digest fails
    writeFileSync(join(blobs, biggest), bytes);
    const { env, dir } = freshStore();
    const r = inStore(env, ["import", oci]);
    expect(r.code).toBe(125);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/corrupt/);
    noDebris(dir);
  });

  test("a layer blob replaced by another valid one is refused, naming the digest it has and the one it should", async () => {
    const w = workdir();
    const oci = await ociLayout(w, layers(w), "example.com/demo:3", { Cmd: ["true"] });
    const manifest = JSON.parse(readFileSync(join(oci, "blobs/sha256", JSON.parse(readFileSync(join(oci, "index.json"), "utf8")).manifests[0].digest.slice(7)), "utf8"));
    const want = manifest.layers[0].digest as string;
    // another well-formed gzip tar under the first layer's name
    const other = tarOf(layerDir(w, "other", { "x/other": "other\n" }), join(w, "other.tar"));
    sh(`gzip -n -c ${other} > ${join(oci, "blobs/sha256", want.slice(7))}`);
    const has = `sha256:${await sha256(join(oci, "blobs/sha256", want.slice(7)))}`;
    const { env, dir } = freshStore();
    const r = inStore(env, ["import", oci]);
    expect(r.code).toBe(125);
    expect(r.stderr.trim()).toBe(`bunker: ${oci}: a layer's digest is ${has}, not ${want} as its manifest says: the archive is corrupt`);
    noDebris(dir);
  });
});

describe.skipIf(Bun.spawnSync(["sh", "-c", "command -v podman"]).exitCode !== 0 || !asRoot)("archives written by podman", () => {
  test("podman save (docker-archive and oci-archive) and podman export import and run", () => {
    const w = workdir();
    const tag = `localhost/bunker-test-${process.pid}:1`;
    const name = `bunker-test-${process.pid}`;
    sh(`podman import -q ${tarOf(rootfsDir(w), join(w, "base.tar"))} ${tag} >/dev/null`);
    try {
      sh(`podman save -q -o ${w}/docker.tar ${tag} && podman save -q --format oci-archive -o ${w}/oci.tar ${tag}`);
      sh(`podman create -q --name ${name} ${tag} sh >/dev/null && podman export -o ${w}/export.tar ${name}`);
      sh(`chmod 644 ${w}/*.tar`);
      const { env } = freshStore();
      for (const kind of ["docker", "oci", "export"]) {
        const imp = inStore(env, ["import", `${w}/${kind}.tar`, "--name", `pm-${kind}`]);
        expect(imp.stderr).toBe("");
        expect(imp.stdout).toStartWith(`pm-${kind}:latest sha256:`);
        expect(inStore(env, ["run", "--rm", `pm-${kind}`, "/bin/sh", "-c", "echo $$"]).stdout).toBe("1\n");
      }
    } finally {
      Bun.spawnSync(["sh", "-c", `podman rm -f ${name}; podman rmi -f ${tag}`], { stdout: "ignore", stderr: "ignore" });
    }
  });
});

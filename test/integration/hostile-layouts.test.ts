// Image archives are hostile too: an OCI layout (directory or tar) or a
// docker-archive whose JSON lies, points outside the input, or would hang
// or exhaust memory is refused in one line, exit 125, leaving nothing.
import { describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { archive, header, tarOf } from "../helpers/tar.ts";
import { asUser, setup } from "./harness.ts";
import { freshStore, inStore, noDebris, sh, workdir } from "./store.ts";

const h = setup();
const enc = new TextEncoder();
const hex = (b: Uint8Array | string) => new Bun.CryptoHasher("sha256").update(b).digest("hex");
const MT = "application/vnd.oci.image.manifest.v1+json";
const IT = "application/vnd.oci.image.index.v1+json";
const LT = "application/vnd.oci.image.layer.v1.tar";
const layerA = tarOf([[{ path: "a" }, "a\n"]]);
const layerB = tarOf([[{ path: "b" }, "b\n"]]);

/** An OCI layout directory of small layers, each JSON document open to change before it is stored. */
function oci(w: string, name: string, o: { layers?: Uint8Array[]; config?: (c: any) => any; manifest?: (m: any) => any; index?: (i: any) => any } = {}) {
  const dir = join(w, name);
  const blobs = join(dir, "blobs/sha256");
  mkdirSync(blobs, { recursive: true });
  const put = (b: Uint8Array | string) => {
    const h = hex(b);
    writeFileSync(join(blobs, h), b);
    return { digest: `sha256:${h}`, size: typeof b === "string" ? enc.encode(b).length : b.length };
  };
  const ls = o.layers ?? [layerA];
  const layers = ls.map((l) => ({ mediaType: LT, ...put(l) }));
  const config = put(JSON.stringify((o.config ?? ((c) => c))({ os: "linux", config: {}, rootfs: { type: "layers", diff_ids: ls.map((l) => `sha256:${hex(l)}`) } })));
  const manifest = put(JSON.stringify((o.manifest ?? ((m) => m))({ schemaVersion: 2, mediaType: MT, config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config }, layers })));
  const index = (o.index ?? ((i) => i))({ schemaVersion: 2, manifests: [{ mediaType: MT, ...manifest, annotations: { "org.opencontainers.image.ref.name": "x/y:1" } }] });
  writeFileSync(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(dir, "index.json"), typeof index === "string" ? index : JSON.stringify(index));
  sh(`chmod -R a+rX ${dir}`);
  return { dir, blob: (d: { digest: string }) => join(blobs, d.digest.slice(7)), put, manifest, config, layers };
}

/** A docker-archive of layerA whose manifest.json entry is open to change. */
function docker(w: string, name: string, change: (m: any) => any, layers = [layerA], stored = (cfg: string) => cfg): string {
  const cfg = JSON.stringify({ os: "linux", rootfs: { type: "layers", diff_ids: layers.map((l) => `sha256:${hex(l)}`) } });
  const man = enc.encode(JSON.stringify(change([{ Config: `${hex(cfg)}.json`, RepoTags: ["d/x:1"], Layers: layers.map((_, i) => `l${i}.tar`) }])));
  const file = join(w, name);
  const f = (path: string, b: Uint8Array) => [header({ path, size: b.length }), b] as [ReturnType<typeof header>, Uint8Array];
  writeFileSync(file, archive([f("manifest.json", man), f(`${hex(cfg)}.json`, enc.encode(stored(cfg))), ...layers.map((l, i) => f(`l${i}.tar`, l))]));
  chmodSync(file, 0o644);
  return file;
}

function refused(input: string, message: RegExp, timeout = 20_000): void {
  const { env, dir } = freshStore();
  const r = inStore(env, ["import", input], { timeout });
  expect(r.code).toBe(125);
  expect(r.stderr.trim().split("\n")).toHaveLength(1);
  expect(r.stderr).toStartWith("bunker: ");
  expect(r.stderr).toMatch(message);
  noDebris(dir);
}

describe("an OCI layout directory reads nothing outside itself", () => {
  const w = workdir();
  const outside = join(w, "outside");
  mkdirSync(outside);
  test("a blob or index.json that is a symlink out, even to the right bytes, and a blobs/ that is one", () => {
    const a = oci(w, "manifest-out");
    const m = a.blob(a.manifest);
    writeFileSync(join(outside, "m"), readFileSync(m));
    rmSync(m);
    symlinkSync(join(outside, "m"), m);
    refused(a.dir, /leads out of/);
    const b = oci(w, "index-out");
    writeFileSync(join(outside, "i"), readFileSync(join(b.dir, "index.json")));
    rmSync(join(b.dir, "index.json"));
    symlinkSync(join(outside, "i"), join(b.dir, "index.json"));
    refused(b.dir, /index\.json leads out of/);
    const c = oci(w, "blobs-out");
    sh(`mv ${c.dir}/blobs ${outside}/blobs && ln -s ${outside}/blobs ${c.dir}/blobs`);
    refused(c.dir, /leads out of/);
  });
  test("a blob that is /dev/zero or a FIFO is refused at once, not read forever", () => {
    for (const [name, make] of [
      ["zero", (p: string) => symlinkSync("/dev/zero", p)],
      ["fifo", (p: string) => sh(`mkfifo -m 644 ${p}`)],
    ] as const) {
      for (const which of ["manifest", "layer"] as const) {
        const a = oci(w, `${name}-${which}`);
        const p = which === "manifest" ? a.blob(a.manifest) : a.blob(a.layers[0]!);
        rmSync(p);
        make(p);
        refused(a.dir, /leads out of|is not a regular file/, 10_000);
      }
    }
  });
  test("a digest that climbs out is refused before any path is made of it", () => {
    refused(oci(w, "trav", { index: (i) => ({ ...i, manifests: [{ ...i.manifests[0], digest: "sha256:../../../etc/shadow" }] }) }).dir, /malformed digest/);
  });
});

describe("JSON of the wrong shape, sizes and media types that lie", () => {
  const w = workdir();
  const cases: [string, () => string, RegExp][] = [
    ["index.json is null", () => oci(w, "i-null", { index: () => "null" }).dir, /index\.json is not a JSON object/],
    ["a null descriptor", () => oci(w, "d-null", { index: (i) => ({ ...i, manifests: [null] }) }).dir, /a descriptor without/],
    ["a null layer descriptor", () => oci(w, "l-null", { manifest: (m) => ({ ...m, layers: [null] }) }).dir, /a descriptor without/],
    ["a null config", () => oci(w, "c-null", { config: () => null }).dir, /is not a JSON object/],
    ["a config whose Env is not a list of strings", () => oci(w, "c-env", { config: (c) => ({ ...c, config: { Env: 5 } }) }).dir, /malformed config/],
    ["an unknown config media type", () => oci(w, "c-mt", { manifest: (m) => ({ ...m, config: { ...m.config, mediaType: "application/x-evil" } }) }).dir, /unknown config media type/],
    ["a manifest that says it is an index", () => oci(w, "m-mt", { manifest: (m) => ({ ...m, mediaType: IT }) }).dir, /says it is/],
    ["a layer's size that lies", () => oci(w, "l-size", { manifest: (m) => ({ ...m, layers: [{ ...m.layers[0], size: 1 }] }) }).dir, /not 1 as its manifest says/],
    ["a layer whose content is not its config's diff_id", () => oci(w, "l-diff", { config: (c) => ({ ...c, rootfs: { type: "layers", diff_ids: [`sha256:${hex(layerB)}`] } }) }).dir, /content digest is sha256:[0-9a-f]{64}, not sha256:[0-9a-f]{64} as the image config says/],
    ["a manifest whose descriptor's size lies", () => oci(w, "m-size", { index: (i) => ({ ...i, manifests: [{ ...i.manifests[0], size: i.manifests[0].size + 1 }] }) }).dir, /does not match its digest and size/],
    [
      "a config changed after it was named",
      () => {
        const a = oci(w, "c-changed");
        writeFileSync(a.blob(a.config), readFileSync(a.blob(a.config), "utf8").replace('"linux"', '"xinux"')); // its size stays
        return a.dir;
      },
      /does not match its digest and size/,
    ],
    ["an unknown layer media type", () => oci(w, "l-mt", { manifest: (m) => ({ ...m, layers: [{ ...m.layers[0], mediaType: "application/x-evil" }] }) }).dir, /unknown layer media type "application\/x-evil"/],
    ["more diff_ids than layers", () => oci(w, "l-count", { config: (c) => ({ ...c, rootfs: { type: "layers", diff_ids: [...c.rootfs.diff_ids, ...c.rootfs.diff_ids] } }) }).dir, /disagree on the number of layers/],
    ["a diff_id that is not sha256", () => oci(w, "l-md5", { config: (c) => ({ ...c, rootfs: { type: "layers", diff_ids: ["md5:0123"] } }) }).dir, /has no valid rootfs\.diff_ids/],
    ["indexes that list more than 10000 descriptors", () => oci(w, "d-many", { index: (i) => ({ ...i, manifests: Array(10_001).fill(i.manifests[0]) }) }).dir, /list more than 10000 descriptors/],
    ["an index of only unknown media types", () => oci(w, "i-unknown", { index: (i) => ({ ...i, manifests: [{ ...i.manifests[0], mediaType: "application/x-evil" }] }) }).dir, /lists no image manifests \(only "application\/x-evil"\)/],
    ["a docker-archive whose config is not what its name says", () => docker(w, "dk-cfg.tar", (m) => m, [layerA], (cfg) => cfg.replace('"linux"', '"evil"')), /does not match its digest: the archive is corrupt/],
    ["a docker-archive layer that is a number", () => docker(w, "dk-num.tar", (m) => [{ ...m[0], Layers: [1] }]), /no Config or Layers/],
    ["a docker-archive entry that is null", () => docker(w, "dk-null.tar", () => [null]), /no Config or Layers/],
    ["a docker-archive tag with a NUL", () => docker(w, "dk-nul.tar", (m) => [{ ...m[0], RepoTags: ["evil\0x:1"] }]), /not an image reference/],
    ["a docker-archive tag that is a number", () => docker(w, "dk-tag.tar", (m) => [{ ...m[0], RepoTags: [1] }]), /not an image reference/],
  ];
  for (const [what, make, message] of cases) test(what, () => refused(make(), message));
});

describe("a multi-platform image: this host's, as docker load takes it", () => {
  const w = workdir();
  const arch = ({ x64: "amd64", ia32: "386" } as Record<string, string>)[process.arch] ?? process.arch;
  const other = arch === "arm64" ? "amd64" : "arm64";
  /** An index of the image for this host, one for another (whose blobs are not there, as in a partial export), and an attestation. */
  function multi(name: string, platforms: ("host" | "other" | "attestation")[]) {
    const a = oci(w, name, { config: (c) => ({ ...c, architecture: arch, config: { Cmd: ["/a"] } }) });
    const absent = (n: number) => ({ mediaType: MT, digest: `sha256:${String(n).repeat(64)}`, size: 500 });
    const entry = {
      host: { mediaType: MT, ...a.manifest, platform: { os: "linux", architecture: arch } },
      other: { ...absent(1), platform: { os: "linux", architecture: other, variant: "v8" } },
      attestation: { ...absent(2), platform: { os: "unknown", architecture: "unknown" }, annotations: { "vnd.docker.reference.type": "attestation-manifest" } },
    };
    const inner = a.put(JSON.stringify({ schemaVersion: 2, mediaType: IT, manifests: platforms.map((p) => entry[p]) }));
    // a descriptor of a type this bunker does not know, which the spec says to ignore
    const unknown = { mediaType: "application/vnd.example.thing+json", ...a.put("{}") };
    writeFileSync(join(a.dir, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: IT, ...inner, annotations: { "io.containerd.image.name": "multi/app:1" } }, unknown] }));
    sh(`chmod -R a+rX ${a.dir}`);
    return a.dir;
  }
  test("the host's image is imported and named; the other platforms' and attestations are passed over, their blobs never read", () => {
    const { env } = freshStore();
    const r = inStore(env, ["import", multi("m-all", ["other", "host", "attestation"])]);
    expect([r.code, r.stderr]).toEqual([0, ""]);
    expect(r.stdout).toMatch(/^multi\/app:1 sha256:[0-9a-f]{64}\n$/);
    const images = JSON.parse(inStore(env, ["images", "--json"]).stdout) as { names: string[] }[];
    expect(images.map((i) => i.names)).toEqual([["multi/app:1"]]);
    const [image] = JSON.parse(inStore(env, ["inspect", "--json", "multi/app:1"]).stdout);
    expect([image.Architecture, image.Config.Cmd]).toEqual([arch, ["/a"]]);
  });
  test.skipIf(arch !== "amd64")("of several variants for this host, the latest its CPU runs: amd64's v2 over none, and not v9", () => {
    const a = oci(w, "m-variants", { config: (c) => ({ ...c, architecture: arch, config: { Cmd: ["/a"] } }) });
    // the same layers under a config of its own, as a build for x86-64-v2 has
    const config = a.put(JSON.stringify({ os: "linux", architecture: arch, variant: "v2", config: { Cmd: ["/b"] }, rootfs: { type: "layers", diff_ids: [`sha256:${hex(layerA)}`] } }));
    const v2 = a.put(JSON.stringify({ schemaVersion: 2, mediaType: MT, config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config }, layers: a.layers }));
    const manifests = [
      { mediaType: MT, ...a.manifest, platform: { os: "linux", architecture: arch } },
      { mediaType: MT, ...v2, platform: { os: "linux", architecture: arch, variant: "v2" } },
      { mediaType: MT, digest: `sha256:${"9".repeat(64)}`, size: 500, platform: { os: "linux", architecture: arch, variant: "v9" } }, // never read
    ];
    const inner = a.put(JSON.stringify({ schemaVersion: 2, mediaType: IT, manifests }));
    writeFileSync(join(a.dir, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: IT, ...inner, annotations: { "io.containerd.image.name": "multi/v:1" } }] }));
    sh(`chmod -R a+rX ${a.dir}`);
    const { env } = freshStore();
    const r = inStore(env, ["import", a.dir]);
    expect([r.code, r.stderr]).toEqual([0, ""]);
    const images = JSON.parse(inStore(env, ["images", "--json"]).stdout) as { names: string[] }[];
    expect(images.map((i) => i.names)).toEqual([["multi/v:1"]]);
    expect(JSON.parse(inStore(env, ["inspect", "--json", "multi/v:1"]).stdout)[0].Config.Cmd).toEqual(["/b"]);
  });
  test("none for this host: refused, naming the platforms it has", () => {
    refused(multi("m-other", ["other", "attestation"]), new RegExp(`no image for this host's platform, linux/${arch}: only for linux/${other}/v8`));
  });
});

describe("docker save's own ways", () => {
  test("a layer the archive has already, written as a symlink (or a hard link) to it, is read from there; one that leads out is missing", () => {
    const w = workdir();
    const cfg = JSON.stringify({ os: "linux", rootfs: { type: "layers", diff_ids: [`sha256:${hex(layerA)}`, `sha256:${hex(layerB)}`, `sha256:${hex(layerA)}`] } });
    const f = (path: string, b: Uint8Array | string): [ReturnType<typeof header>, Uint8Array] => {
      const data = typeof b === "string" ? enc.encode(b) : b;
      return [header({ path, size: data.length }), data];
    };
    const make = (name: string, dup: [ReturnType<typeof header>]) => {
      const man = JSON.stringify([{ Config: `${hex(cfg)}.json`, RepoTags: ["d/dup:1"], Layers: [`${hex(layerA)}/layer.tar`, `${hex(layerB)}/layer.tar`, `${"c".repeat(64)}/layer.tar`] }]);
      writeFileSync(join(w, name), archive([f(`${hex(layerA)}/layer.tar`, layerA), f(`${hex(layerB)}/layer.tar`, layerB), dup, f(`${hex(cfg)}.json`, cfg), f("manifest.json", man)]));
      chmodSync(join(w, name), 0o644);
      return join(w, name);
    };
    for (const dup of [header({ type: "symlink", path: `${"c".repeat(64)}/layer.tar`, linkname: `../${hex(layerA)}/layer.tar` }), header({ type: "hardlink", path: `${"c".repeat(64)}/layer.tar`, linkname: `${hex(layerA)}/layer.tar` })]) {
      const { env } = freshStore();
      const r = inStore(env, ["import", make(`dup-${dup.type}.tar`, [dup])]);
      expect([r.code, r.stderr]).toEqual([0, ""]);
      expect((JSON.parse(inStore(env, ["images", "--json"]).stdout) as { layers: string[] }[])[0]!.layers).toHaveLength(3);
    }
    refused(make("dup-out.tar", [header({ type: "symlink", path: `${"c".repeat(64)}/layer.tar`, linkname: `../../${hex(layerA)}/layer.tar` })]), /layer c{64}\/layer\.tar is missing from the archive/);
  });
});

describe("whiteouts, as the image spec has them", () => {
  test("a directory whited out and made again in one layer shows only what that layer puts in it, on an overlay and on a copy", () => {
    const w = workdir();
    const busybox = new Uint8Array(readFileSync(join(h.main.rootfs, "bin/busybox")));
    const f = (path: string, text: string) => [header({ path, size: text.length }), enc.encode(text)] as [ReturnType<typeof header>, Uint8Array];
    const lower = archive([[header({ path: "bin/busybox", mode: 0o755, size: busybox.length }), busybox], f("d/a", "a"), f("d/b", "b"), f("e/sub/k", "k")]);
    // .wh.d before the layer's own d; e/sub made again only by an entry below it
    const upper = archive([f(".wh.d", ""), [header({ type: "dir", path: "d" })], f("d/new", "n"), f("e/.wh.sub", ""), f("e/sub/z", "z")]);
    const a = oci(w, "wh-remade", { layers: [lower, upper], config: (c) => ({ ...c, config: { Cmd: ["/bin/busybox", "ls", "/d", "/e/sub"] } }) });
    const { env } = freshStore();
    expect(inStore(env, ["import", a.dir, "--name", "wh:1"]).code).toBe(0);
    for (const storage of [{}, { BUNKER_STORAGE: "copy" }] as Record<string, string>[]) {
      const r = inStore(env, ["run", "--rm", "--network", "none", "wh:1"], { env: storage });
      expect([r.code, r.stdout]).toEqual([0, "/d:\nnew\n\n/e/sub:\nz\n"]);
    }
  });
});

describe("a refused import leaves no layer and no image behind", () => {
  const w = workdir();
  test("a layout whose second layer is corrupt (the first was good), as a directory and as a tar", () => {
    const a = oci(w, "second", { layers: [layerA, layerB] });
    writeFileSync(a.blob(a.layers[1]!), layerA);
    refused(a.dir, /a layer's digest is/);
    sh(`tar -C ${a.dir} -cf ${w}/second.tar . && chmod 644 ${w}/second.tar`);
    refused(`${w}/second.tar`, /a layer's digest is/);
  });
  test("a layer the store has already is read and checked all the same: a blob whose digest matches but whose content is another's is refused", () => {
    const { env, dir } = freshStore();
    expect(inStore(env, ["import", oci(w, "good").dir]).code).toBe(0);
    // the blob's digest is its own (the manifest is right about it); the config claims it holds layerA's content
    const garbage = enc.encode("not the layer at all\n");
    const evil = oci(w, "claims-a", { layers: [garbage], config: (c) => ({ ...c, rootfs: { type: "layers", diff_ids: [`sha256:${hex(layerA)}`] } }) });
    const r = inStore(env, ["import", evil.dir]);
    expect([r.code, r.stderr]).toEqual([125, expect.stringMatching(/^bunker: [^\n]*content digest is sha256:[0-9a-f]{64}, not sha256:[0-9a-f]{64} as the image config says: the archive is corrupt\n$/)]);
    expect((JSON.parse(inStore(env, ["images", "--json"]).stdout) as unknown[]).length).toBe(1);
    expect(readdirSync(join(dir, "bunker/tmp"))).toEqual([]);
  });
  test("a docker-archive whose second image is corrupt: the first is not registered either", () => {
    refused(docker(w, "two.tar", (m) => [m[0], { ...m[0], RepoTags: ["d/two:1"], Layers: ["l1.tar"] }], [layerA, layerB]), /names 2 layers but the manifest 1|content digest/);
  });
});

describe("memory stays bounded", () => {
  const w = workdir();
  test("nested indexes that fan out (300 x 300 x 300 of one manifest) import that manifest once", () => {
    const a = oci(w, "fanout");
    const N = 300;
    const leaf = a.put(JSON.stringify({ schemaVersion: 2, manifests: Array(N).fill({ mediaType: MT, ...a.manifest }) }));
    const mid = a.put(JSON.stringify({ schemaVersion: 2, manifests: Array(N).fill({ mediaType: IT, ...leaf }) }));
    writeFileSync(join(a.dir, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: Array(N).fill({ mediaType: IT, ...mid }) }));
    sh(`chmod -R a+rX ${a.dir}`);
    const { env } = freshStore();
    const r = inStore(env, ["import", a.dir, "--name", "fan:1"], { timeout: 20_000 });
    expect([r.code, r.stderr]).toEqual([0, ""]);
    expect(r.stdout.trim().split("\n")).toHaveLength(1);
  });
  test("an index.json of 100 MB is refused by its size, before it is read", () => {
    const a = oci(w, "huge-index");
    writeFileSync(join(a.dir, "index.json"), `{"manifests":[${" ".repeat(100 << 20)}]}`);
    refused(a.dir, /index\.json is too large/);
  });
  test("a gzip OCI tar of 600 one-MB blobs is indexed without holding them", () => {
    const blob = new Uint8Array(1 << 20).fill(0x20);
    const entries: [ReturnType<typeof header>, Uint8Array][] = [[header({ path: "oci-layout", size: 30 }), enc.encode('{"imageLayoutVersion":"1.0.0"}')]];
    for (let i = 0; i < 600; i++) entries.push([header({ path: `blobs/sha256/${i.toString(16).padStart(64, "0")}`, size: blob.length }), blob]);
    entries.push([header({ path: "index.json", size: 16 }), enc.encode('{"manifests":[]}')]);
    const file = join(w, "many.tar.gz");
    writeFileSync(file, Bun.gzipSync(archive(entries) as Uint8Array<ArrayBuffer>, { level: 1 }));
    chmodSync(file, 0o644);
    const { env, dir } = freshStore();
    const r = Bun.spawnSync(["/usr/bin/time", "-f", "%M", ...asUser([h.bin, "import", file], { env })], { stderr: "pipe" });
    const lines = r.stderr.toString().trim().split("\n");
    expect(lines[0]).toMatch(/index\.json lists no image manifests/);
    expect(Number(lines.at(-1))).toBeLessThan(300 * 1024); // kB: not the 600 MB of blobs
    noDebris(dir);
  });
});

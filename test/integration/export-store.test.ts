// Export and the store under stress: the bundle is private, a killed export leaves nothing, a container
// started (or removed) meanwhile fails the export, a running one exports, large xattrs and kept owners round-trip, and removals and
// concurrent imports never leave a half-made layer.
import { describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { asRoot, asUser, setup } from "./harness.ts";
import { freshStore, hasOpen, inStore, rootfsDir, sh, tarOf, workdir, writingIn } from "./store.ts";

const h = setup();

function outDir(): string {
  const out = mkdtempSync(join(h.dir, "out-"));
  chmodSync(out, 0o777);
  return out;
}

/** An export of `name` that `meanwhile` disturbs once it writes its output: its exit status, its message, and what it left there. */
async function exportDisturbed(env: Record<string, string>, name: string, meanwhile: () => void) {
  const out = outDir();
  const p = Bun.spawn(asUser([h.bin, "export", name, "-o", join(out, `${name}.bundle`)], { env }), { stderr: "pipe" });
  while (!writingIn(p.pid, out) && p.exitCode === null) await Bun.sleep(2);
  meanwhile();
  return { code: await p.exited, stderr: await new Response(p.stderr).text(), left: readdirSync(out) };
}

/** A store with an image "base" and a stopped container "big" whose /big is n bytes that do not compress. */
function bigContainer(n: number) {
  const a = freshStore();
  const w = workdir();
  expect(inStore(a.env, ["import", tarOf(rootfsDir(w), join(w, "base.tar")), "--name", "base"]).code).toBe(0);
  expect(inStore(a.env, ["run", "--name", "big", "base", "/bin/sh", "-c", `head -c ${n} /dev/urandom > /big`]).code).toBe(0);
  return a;
}

describe("export", () => {
  test("the bundle is its owner's alone (0600), whatever the umask", () => {
    const a = bigContainer(1000);
    const out = outDir();
    const bundle = join(out, "c.bundle");
    const r = Bun.spawnSync(["sh", "-c", `umask 022; exec "$@"`, "sh", ...asUser([h.bin, "export", "big", "-o", bundle], { env: a.env })], { stderr: "pipe" });
    expect(r.stderr.toString()).toBe("");
    expect(statSync(bundle).mode & 0o777).toBe(0o600);
  });

  test("an export killed with SIGKILL leaves nothing in the output's directory", async () => {
    const a = bigContainer(48_000_000);
    const out = outDir();
    const p = Bun.spawn(asUser([h.bin, "export", "big", "-o", join(out, "big.bundle")], { env: a.env }), { stderr: "pipe" });
    while (!writingIn(p.pid, out) && p.exitCode === null) await Bun.sleep(2);
    p.kill("SIGKILL");
    expect(await p.exited).toBe(137);
    expect(readdirSync(out)).toEqual([]);
  });

  test("a container started again while it is exported is refused, not exported torn", async () => {
    const a = bigContainer(200_000_000);
    const r = await exportDisturbed(a.env, "big", () => expect(inStore(a.env, ["restart", "big"]).code).toBe(0));
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("was started while it was being exported");
    expect(r.left).toEqual([]);
  });

  test("xattrs of any size, and files with more than 4 KiB of xattr names, travel whole, and are copied whole", () => {
    if (!asRoot) return; // a tmpfs store: ext4 holds no 5000-byte value
    const mnt = mkdtempSync(join(h.dir, "tmpfs-"));
    sh(`mount -t tmpfs -o mode=755 tmpfs ${mnt}`);
    try {
      const store = (name: string) => {
        const d = join(mnt, name);
        mkdirSync(d);
        sh(`chown ${h.main.uid}:${h.main.gid} ${d}`);
        return { XDG_DATA_HOME: d, XDG_RUNTIME_DIR: freshStore().env.XDG_RUNTIME_DIR! };
      };
      const w = workdir();
      const a = store("a");
      expect(inStore(a, ["import", tarOf(rootfsDir(w), join(w, "base.tar")), "--name", "base"]).code).toBe(0);
      // setfattr is not in the test rootfs: the container makes the files, root tags them in its upper layer
      expect(inStore(a, ["run", "--name", "c", "base", "/bin/sh", "-c", "echo 1 > /big && echo 2 > /many"]).code).toBe(0);
      const [id] = readdirSync(join(a.XDG_DATA_HOME, "bunker", "containers"));
      const upper = join(a.XDG_DATA_HOME, "bunker", "containers", id!, "upper");
      sh(`python3 -c "import os; os.setxattr('${upper}/big', 'user.big', b'v' * 5000); os.setxattr('${upper}/big', b'user.k\\xe9', b'latin')
for i in range(60): os.setxattr('${upper}/many', 'user.n%02d' % i + 'a' * 80, b'1')"`);
      const out = outDir();
      expect(inStore(a, ["export", "c", "-o", join(out, "c.bundle")]).stderr).toBe("");
      const b = store("b");
      expect(inStore(b, ["import", join(out, "c.bundle")]).code).toBe(0);
      const [layer] = readdirSync(join(b.XDG_DATA_HOME, "bunker", "layers"));
      const diff = join(b.XDG_DATA_HOME, "bunker", "layers", layer!, "diff");
      const sizes = (dir: string) => Bun.spawnSync(["python3", "-c", `import os; print(len(os.getxattr('${dir}/big', 'user.big')), len(os.listxattr('${dir}/many')))`]).stdout.toString();
      expect(sizes(diff)).toBe("5000 60\n");
      // an xattr whose name is not UTF-8 keeps its name's bytes
      expect(Bun.spawnSync(["python3", "-c", `import os; print(os.getxattr('${diff}/big', b'user.k\\xe9').decode())`]).stdout.toString()).toBe("latin\n");
      // and a container that gets its own copy of the image (no overlayfs) gets them whole too
      const copied = inStore({ ...b, BUNKER_STORAGE: "copy" }, ["run", "--name", "copied", "--network", "none", "c", "true"]);
      expect(copied.code).toBe(0);
      const [cid] = readdirSync(join(b.XDG_DATA_HOME, "bunker", "containers"));
      expect(sizes(join(b.XDG_DATA_HOME, "bunker", "containers", cid!, "rootfs"))).toBe("5000 60\n");
    } finally {
      sh(`umount -l ${mnt}`);
    }
  });

  test("owners a one-id store keeps survive a container that only wrote inside their directory; its own chmod wins", () => {
    if (!asRoot) return;
    const w = workdir();
    // with a user.* xattr on a file of another owner, which the one-id store cannot give it, but keeps all the same
    const src = rootfsDir(w, `mkdir -p srv/app && echo t > srv/app/tagged && chown 33:44 srv/app srv/app/tagged && chmod 750 srv/app && python3 -c "import os; os.setxattr('srv/app/tagged', 'user.k', b'v')"`);
    const tar = join(w, "own.tar");
    sh(`tar --xattrs --xattrs-include='user.*' --numeric-owner -C ${src} -cf ${tar} . && chmod 644 ${tar}`);
    const single = freshStore(h.single);
    expect(inStore(single.env, ["import", tar, "--name", "own"], { user: h.single }).code).toBe(0);
    // on an overlay (which marks what it copied up), and on a copy of the image (which notes what it copied)
    const cases: string[][] = [];
    for (const storage of ["overlay", "copy"]) {
      const env = storage === "copy" ? { ...single.env, BUNKER_STORAGE: "copy" } : single.env;
      const run = (name: string, script: string) => expect(inStore(env, ["run", "--name", `${name}-${storage}`, "own", "/bin/sh", "-c", script], { user: h.single }).code).toBe(0);
      run("wrote", "echo x > /srv/app/new");
      run("chmodded", "chmod 700 /srv/app");
      run("remade", "rm /srv/app/tagged && echo new > /srv/app/tagged"); // the same path and mode, but its own file now
      run("remadedir", "rm -r /srv/app && mkdir -m 750 /srv/app && echo new > /srv/app/tagged"); // and its own directory
      const want = [["wrote", "33:44 750", "33:44"], ["chmodded", "0:0 700", "33:44"], ["remade", "33:44 750", "0:0"], ["remadedir", "0:0 750", "0:0"]];
      cases.push(...want.map(([name, dir, tagged]) => [`${name}-${storage}`, dir!, tagged!]));
    }
    const out = outDir();
    const ranges = freshStore();
    for (const [name, want, tagged] of cases) {
      const bundle = join(out, `${name}.bundle`);
      expect(inStore(single.env, ["export", name!, "-o", bundle], { user: h.single }).code).toBe(0);
      chmodSync(bundle, 0o644); // handed to the other user (a bundle is made 0600)
      const imp = inStore(ranges.env, ["import", bundle, "--name", name!]);
      expect(imp.stderr).toBe("");
      expect(imp.code).toBe(0);
      expect(inStore(ranges.env, ["run", "--rm", name!, "stat", "-c", "%u:%g %a", "/srv/app"]).stdout).toBe(`${want}\n`);
      expect(inStore(ranges.env, ["run", "--rm", name!, "stat", "-c", "%u:%g", "/srv/app/tagged"]).stdout).toBe(`${tagged}\n`);
      const [layer] = readdirSync(join(ranges.dir, "bunker/layers"));
      const xattr = Bun.spawnSync(["python3", "-c", `import os; print(os.getxattr('${join(ranges.dir, "bunker/layers", layer!, "diff/srv/app/tagged")}', 'user.k'))`]);
      expect(xattr.stdout.toString()).toBe(name!.startsWith("remade") ? "" : "b'v'\n");
      expect(inStore(ranges.env, ["rmi", name!]).code).toBe(0);
    }
  });
});

/** bunker started in a store, not waited for. */
function spawnIn(env: Record<string, string>, args: string[]) {
  return Bun.spawn(asUser([h.bin, ...args], { env }), { stdout: "pipe", stderr: "pipe" });
}

/** Until the process waits for a lock (one the test holds with flock -o), or 5 s. */
async function waitsForLock(pid: number): Promise<void> {
  for (let i = 0; i < 500 && !/lock/.test(readFileSync(`/proc/${pid}/wchan`, "utf8")); i++) await Bun.sleep(10);
}

/** Two commands that wait in turn for a lock the test holds (-o: only flock itself), then are let go together. */
async function queued(env: Record<string, string>, lock: string, first: string[], second: string[]) {
  const held = Bun.spawn(["flock", "-o", lock, "sleep", "30"]);
  await Bun.sleep(50);
  const one = spawnIn(env, first);
  await waitsForLock(one.pid);
  const two = spawnIn(env, second);
  await waitsForLock(two.pid);
  held.kill();
  return [one, two] as const;
}

describe("store", () => {
  test("a layer half removed (a removal killed midway) does not block importing it again", () => {
    if (!asRoot) return; // makes the debris by hand, as the store's owner
    const w = workdir();
    const tar = tarOf(rootfsDir(w), join(w, "base.tar"));
    const a = freshStore();
    const hex = new Bun.CryptoHasher("sha256").update(readFileSync(tar)).digest("hex");
    expect(inStore(a.env, ["rmi", "nothing"]).code).toBe(125); // the store exists (listing makes none)
    const layer = join(a.dir, "bunker", "layers", hex);
    sh(`mkdir -p ${layer}/diff/bin && touch ${layer}/diff/bin/left && chown -R ${h.main.uid}:${h.main.gid} ${layer}`);
    const r = inStore(a.env, ["import", tar, "--name", "base"]);
    expect(r.stderr).toBe("");
    expect(inStore(a.env, ["run", "--rm", "base", "/bin/sh", "-c", "ls /bin | wc -l"]).stdout.trim()).not.toBe("1");
    expect(readdirSync(join(a.dir, "bunker", "tmp"))).toEqual([]);
  });

  test("imports of one image at once all succeed", async () => {
    const w = workdir();
    const tar = tarOf(rootfsDir(w), join(w, "base.tar"));
    const a = freshStore();
    const ps = Array.from({ length: 6 }, (_, i) =>
      Bun.spawn(asUser([h.bin, "import", tar, "--name", `n${i}`], { env: a.env }), { stderr: "pipe" }),
    );
    const codes = await Promise.all(ps.map((p) => p.exited));
    const errs = await Promise.all(ps.map((p) => new Response(p.stderr).text()));
    expect(errs.filter((e) => e !== "")).toEqual([]);
    expect(codes).toEqual([0, 0, 0, 0, 0, 0]);
    expect(readdirSync(join(a.dir, "bunker", "layers")).length).toBe(1);
  });

  test("an rmi while an import reuses its layer never leaves an image without one, nor fails the import", async () => {
    const w = workdir();
    const tar = tarOf(rootfsDir(w), join(w, "base.tar"));
    const a = freshStore();
    for (const rmiFirst of [false, true, false, true]) {
      expect(inStore(a.env, ["import", tar, "--name", "a"]).code).toBe(0);
      // "b" has the same layer as "a": its import finds the layer in place, then waits to register while the test
      // holds the index's lock, and so does the rmi of "a"
      const [rmi, imp] = rmiFirst ? await queued(a.env, join(a.dir, "bunker/lock"), ["rmi", "a"], ["import", tar, "--name", "b"]) : (await queued(a.env, join(a.dir, "bunker/lock"), ["import", tar, "--name", "b"], ["rmi", "a"])).toReversed();
      const [ic, rc] = await Promise.all([imp.exited, rmi.exited]);
      const err = await new Response(imp.stderr).text();
      // either way the import succeeds: first, it holds the layer, which the rmi then spares (it used to take it, and the
      // import to fail saying so); the rmi first, the import finds the layer gone and puts its own copy in place
      expect([rc, ic, err]).toEqual([0, 0, ""]);
      const images = JSON.parse(inStore(a.env, ["images", "--json"]).stdout) as { names: string[] }[];
      expect(images.map((i) => i.names)).toEqual([["b:latest"]]);
      expect(inStore(a.env, ["run", "--rm", "b", "true"]).stderr).toBe("");
      expect(inStore(a.env, ["rmi", "b"]).code).toBe(0);
      expect(readdirSync(join(a.dir, "bunker", "layers"))).toEqual([]);
    }
  });

  test.skipIf(!asRoot)("a running container is exported as its files are while they are read, as Docker does: what it removes meanwhile is passed over", async () => {
    const w = workdir();
    const a = freshStore();
    expect(inStore(a.env, ["import", tarOf(rootfsDir(w), join(w, "base.tar")), "--name", "base"]).code).toBe(0);
    // a large file, then 300 directories listed with it: most come after it in the walk, which lists a directory before it reads what is in it
    const make = "mkdir /churn && head -c 200000000 /dev/urandom > /churn/a && cd /churn && mkdir $(seq 300) && touch /ready && exec sleep 1000";
    expect(inStore(a.env, ["run", "-d", "--name", "up", "--network", "none", "base", "/bin/sh", "-c", make]).code).toBe(0);
    for (let i = 0; i < 3000 && inStore(a.env, ["exec", "up", "test", "-e", "/ready"]).code !== 0; i++) await Bun.sleep(20);
    const out = outDir();
    const p = Bun.spawn(asUser([h.bin, "export", "up", "-o", join(out, "up.bundle")], { env: a.env }), { stderr: "pipe" });
    // while the walk reads /churn/a (the file open in one of the user's processes: the stage), the container removes the directories
    const reading = () => readdirSync("/proc").some((pid) => /^\d+$/.test(pid) && pid !== String(p.pid) && hasOpen(pid, (path) => path.endsWith("/churn/a")));
    while (!reading() && p.exitCode === null) await Bun.sleep(2);
    expect(inStore(a.env, ["exec", "up", "/bin/sh", "-c", "cd /churn && rmdir $(seq 300)"]).code).toBe(0);
    expect([await p.exited, await new Response(p.stderr).text()]).toEqual([0, ""]);
    expect(inStore(a.env, ["ps", "-q"]).stdout.trim()).not.toBe(""); // still running
    const b = freshStore();
    expect(inStore(b.env, ["import", join(out, "up.bundle"), "--name", "up"]).code).toBe(0);
    const check = inStore(b.env, ["run", "--rm", "--network", "none", "up", "/bin/sh", "-c", "wc -c < /churn/a; ls /churn | wc -l"]);
    expect(check.code).toBe(0);
    const [size, listed] = check.stdout.trim().split(/\s+/).map(Number);
    expect(size).toBe(200_000_000);
    expect(listed).toBeLessThan(301); // the directories the walk had passed before the removal, and /churn/a
    expect(inStore(a.env, ["rm", "-f", "up"]).code).toBe(0);
  });

  test("a running container is read through its own root mount: what is mounted in it stays out, and no second overlay shares its upper layer", async () => {
    const w = workdir();
    const a = freshStore();
    expect(inStore(a.env, ["import", tarOf(rootfsDir(w, "echo image > etc/hosts"), join(w, "base.tar")), "--name", "base"]).code).toBe(0);
    const vol = join(w, "vol");
    mkdirSync(vol);
    sh(`echo host > ${vol}/secret && chmod -R a+rX ${vol}`);
    // /big grows all the while: read live, it goes as far as it was when the walk reached it
    const make = "head -c 300000000 /dev/zero > /big && echo scratch > /scratch/x && echo given >> /etc/hosts && touch /ready && while :; do echo x >> /big; sleep 0.01; done";
    const r = inStore(a.env, ["run", "-d", "--name", "up", "--network", "none", "-v", `${vol}:/vol:ro`, "--tmpfs", "/scratch", "base", "/bin/sh", "-c", make]);
    expect([r.code, r.stderr]).toEqual([0, ""]);
    try {
      for (let i = 0; i < 3000 && inStore(a.env, ["exec", "up", "test", "-e", "/ready"]).code !== 0; i++) await Bun.sleep(20);
      const out = outDir();
      const p = Bun.spawn(asUser([h.bin, "export", "up", "-o", join(out, "up.bundle")], { env: a.env }), { stderr: "pipe" });
      if (asRoot) {
        // the process reading /big is in the container's mount namespace (a process of the user's own, not dumpable, shows it to root only)
        const pid1 = /\(pid (\d+)\)/.exec(inStore(a.env, ["inspect", "up"]).stdout)![1]!;
        const reading = () => readdirSync("/proc").find((pid) => /^\d+$/.test(pid) && pid !== pid1 && hasOpen(pid, (path) => path === "/big"));
        let reader: string | undefined;
        while (!(reader = reading()) && p.exitCode === null) await Bun.sleep(2);
        expect(reader && readlinkSync(`/proc/${reader}/ns/mnt`)).toBe(readlinkSync(`/proc/${pid1}/ns/mnt`));
      }
      expect([await p.exited, await new Response(p.stderr).text()]).toEqual([0, ""]);
      chmodSync(join(out, "up.bundle"), 0o644);
      const names = Bun.spawnSync(["tar", "-tf", join(out, "up.bundle")], { stdout: "pipe" }).stdout.toString().split("\n");
      expect(names).toContain("rootfs/big");
      // the mount points are there, as in the image or made for the mounts; nothing of what is mounted on them
      expect(names.filter((n) => /^rootfs\/(vol|scratch|proc|dev|sys)\//.test(n)).sort()).toEqual(["rootfs/dev/", "rootfs/proc/", "rootfs/scratch/", "rootfs/sys/", "rootfs/vol/"]);
      const hosts = Bun.spawnSync(["tar", "-xOf", join(out, "up.bundle"), "rootfs/etc/hosts"], { stdout: "pipe" }).stdout.toString();
      expect(hosts).toBe("image\n"); // the image's, beneath the one the container was given
    } finally {
      expect(inStore(a.env, ["rm", "-f", "up"]).code).toBe(0);
    }
  });

  test("a running container whose first process has a user namespace (and a mount namespace) of its own exports, and takes exec, in the container's", async () => {
    const w = workdir();
    const a = freshStore();
    expect(inStore(a.env, ["import", tarOf(rootfsDir(w), join(w, "base.tar")), "--name", "base"]).code).toBe(0);
    const out = outDir();
    // -m: its mounts are locked to it, and its root cannot be read alone: the export reads the layers
    for (const [name, flags] of [["nest", "-U -r"], ["nestm", "-U -m -r"]] as const) {
      const r = inStore(a.env, ["run", "-d", "--name", name, "--network", "none", "base", "/bin/sh", "-c", `echo mine > /mine && chown 1000:1000 /mine && exec unshare ${flags} sleep 1000`]);
      expect(r.code).toBe(0);
      try {
        const pid1 = /\(pid (\d+)\)/.exec(inStore(a.env, ["inspect", name]).stdout)![1]!;
        for (let i = 0; i < 500 && readFileSync(`/proc/${pid1}/comm`, "utf8") !== "sleep\n"; i++) await Bun.sleep(10); // unshare has run
        // exec is root in the container's user namespace, not pid 1's, with the container's ids
        const x = inStore(a.env, ["exec", name, "/bin/sh", "-c", 'id -u; [ "$(readlink /proc/self/ns/user)" != "$(readlink /proc/1/ns/user)" ] && echo outer; stat -c %u /mine']);
        expect([name, x.stdout, x.stderr]).toEqual([name, "0\nouter\n1000\n", ""]);
        const e = inStore(a.env, ["export", name, "-o", join(out, `${name}.bundle`)]);
        expect([name, e.code, e.stderr]).toEqual([name, 0, ""]);
        chmodSync(join(out, `${name}.bundle`), 0o644);
        const listed = Bun.spawnSync(["tar", "--numeric-owner", "-tvf", join(out, `${name}.bundle`), "rootfs/mine"], { stdout: "pipe" }).stdout.toString();
        expect(listed).toMatch(/ 1000\/1000 +5 .* rootfs\/mine\n$/);
      } finally {
        expect(inStore(a.env, ["rm", "-f", name]).code).toBe(0);
      }
    }
  });

  test("a running container whose first process is gone when the export would join it is read as a stopped one", () => {
    const w = workdir();
    const a = freshStore();
    expect(inStore(a.env, ["import", tarOf(rootfsDir(w), join(w, "base.tar")), "--name", "base"]).code).toBe(0);
    expect(inStore(a.env, ["run", "-d", "--name", "went", "--network", "none", "base", "/bin/sh", "-c", "echo mine > /mine && exec sleep 1000"]).code).toBe(0);
    // its stage lives on (running, says the state), but pid 1 is not the process recorded: as if it had exited
    // just now, and its pid gone to another process (this test's, not in a namespace of the user's)
    const [id] = readdirSync(join(a.env.XDG_RUNTIME_DIR!, "bunker/containers"));
    const pidFile = join(a.env.XDG_RUNTIME_DIR!, "bunker/containers", id!, "pid");
    const recorded = readFileSync(pidFile, "utf8");
    const f = recorded.split(" ");
    [f[2], f[3]] = [String(process.pid), "1"];
    writeFileSync(pidFile, f.join(" "));
    const out = outDir();
    try {
      const e = inStore(a.env, ["export", "went", "-o", join(out, "went.bundle")]);
      expect([e.code, e.stderr]).toEqual([0, ""]);
      chmodSync(join(out, "went.bundle"), 0o644);
      expect(Bun.spawnSync(["tar", "-xOf", join(out, "went.bundle"), "rootfs/mine"], { stdout: "pipe" }).stdout.toString()).toBe("mine\n");
    } finally {
      writeFileSync(pidFile, recorded);
      expect(inStore(a.env, ["rm", "-f", "went"]).code).toBe(0);
    }
  });

  test("a running container that writes all the time exports, each file as far as it was when the walk reached it, as Docker's and GNU tar's do, on each storage", () => {
    const w = workdir();
    const a = freshStore();
    expect(inStore(a.env, ["import", tarOf(rootfsDir(w), join(w, "base.tar")), "--name", "base"]).code).toBe(0);
    const log = "while :; do echo line >> /var/log.txt; echo x > /var/state; done";
    const fuse = ["/usr/bin/fuse-overlayfs", "/bin/fuse-overlayfs"].some((p) => existsSync(p)) && existsSync("/dev/fuse");
    // the kernel's overlayfs (read in the container's mount namespace), a copy and fuse-overlayfs (their layers read anew)
    const storages = ["", "copy", ...(fuse ? ["fuse-overlayfs"] : [])];
    const out = outDir();
    const b = freshStore();
    for (const storage of storages) {
      const env = storage ? { ...a.env, BUNKER_STORAGE: storage } : a.env;
      const name = `busy${storage}`;
      expect(inStore(env, ["run", "-d", "--name", name, "--network", "none", "base", "/bin/sh", "-c", log]).code).toBe(0);
      try {
        Bun.sleepSync(500); // the log grows, and takes longer to read than an append
        for (let i = 0; i < 2; i++) {
          const r = inStore(a.env, ["export", name, "-o", join(out, `${name}${i}.bundle`)]);
          expect([r.code, r.stderr]).toEqual([0, ""]);
          expect(inStore(b.env, ["import", join(out, `${name}${i}.bundle`), "--name", `${name}${i}`]).code).toBe(0);
          // an appended file's first bytes are whole lines; a file made again (echo >) is the old or the new, or what its size was then
          const check = inStore(b.env, ["run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", `${name}${i}`, "-c", "grep -vc '^line$' /var/log.txt; wc -l < /var/log.txt"]);
          const [bad, lines] = check.stdout.trim().split("\n").map(Number);
          expect([storage, bad, lines! > 0]).toEqual([storage, 0, true]);
        }
      } finally {
        expect(inStore(a.env, ["rm", "-f", name]).code).toBe(0);
      }
    }
  });

  test("a running --rm container that exits while it is exported: the export is refused, not written without the files it lost", async () => {
    const w = workdir();
    const a = freshStore();
    expect(inStore(a.env, ["import", tarOf(rootfsDir(w), join(w, "base.tar")), "--name", "base"]).code).toBe(0);
    const make = "head -c 200000000 /dev/urandom > /big && touch /ready && exec sleep 1000";
    expect(inStore(a.env, ["run", "-d", "--rm", "--name", "gone", "--network", "none", "base", "/bin/sh", "-c", make]).code).toBe(0);
    for (let i = 0; i < 3000 && inStore(a.env, ["exec", "gone", "test", "-e", "/ready"]).code !== 0; i++) await Bun.sleep(20);
    const r = await exportDisturbed(a.env, "gone", () => expect(inStore(a.env, ["kill", "gone"]).code).toBe(0));
    expect(r.code).toBe(125);
    expect(r.stderr).toBe("bunker: container gone was removed while it was being exported\n");
    expect(r.left).toEqual([]);
  });

  test("rm of a container an export is reading is refused, and the export waits for another of the same container", async () => {
    const w = workdir();
    const a = freshStore();
    expect(inStore(a.env, ["import", tarOf(rootfsDir(w), join(w, "base.tar")), "--name", "base"]).code).toBe(0);
    expect(inStore(a.env, ["run", "--name", "c", "--network", "none", "base", "true"]).code).toBe(0);
    const [id] = readdirSync(join(a.dir, "bunker/containers"));
    // what an export holds while it reads the container
    const held = Bun.spawn(["flock", "-o", join(a.dir, "bunker/containers", id!, "container.json"), "sleep", "30"]);
    await Bun.sleep(50);
    const out = outDir();
    const exp = Bun.spawn(asUser([h.bin, "export", "c", "-o", join(out, "c.bundle")], { env: a.env }), { stdout: "pipe", stderr: "pipe" });
    for (let i = 0; i < 500 && !/lock/.test(readFileSync(`/proc/${exp.pid}/wchan`, "utf8")); i++) await Bun.sleep(10);
    const rm = inStore(a.env, ["rm", "c"]);
    expect([rm.code, rm.stderr]).toEqual([125, "bunker: container c is being exported: remove it once that is done\n"]);
    held.kill();
    expect(await exp.exited).toBe(0);
    expect(inStore(a.env, ["rm", "c"]).code).toBe(0);
    expect(readdirSync(join(a.dir, "bunker/containers"))).toEqual([]);
    expect(readdirSync(join(a.dir, "bunker/names"))).toEqual([]); // its name goes with it
  });

  test("rm and restart of a stopped container at once: one wins, the other says so, and nothing is left half", async () => {
    const w = workdir();
    const a = freshStore();
    expect(inStore(a.env, ["import", tarOf(rootfsDir(w), join(w, "base.tar")), "--name", "base"]).code).toBe(0);
    const lock = join(a.env.XDG_RUNTIME_DIR!, "bunker/lock"); // the runtime's
    for (const rmFirst of [true, false]) {
      // foreground, so that its runtime state goes when it exits: restart starts it from the store's record (and it stays up)
      expect(inStore(a.env, ["run", "--name", "c", "--network", "none", "base", "sh", "-c", "[ -e /again ] && exec sleep 30; touch /again"]).code).toBe(0);
      const [rm, restart] = rmFirst ? await queued(a.env, lock, ["rm", "c"], ["restart", "c"]) : (await queued(a.env, lock, ["restart", "c"], ["rm", "c"])).toReversed();
      const [rc, sc] = await Promise.all([rm.exited, restart.exited]);
      const [rerr, serr] = await Promise.all([new Response(rm.stderr).text(), new Response(restart.stderr).text()]);
      const listed = JSON.parse(inStore(a.env, ["ps", "-a", "--json"]).stdout) as { name: string; state: string }[];
      // whichever takes the runtime's lock first wins (waiting first does not make it so)
      if (rmFirst && sc !== 0) {
        expect([rc, sc, serr]).toEqual([0, 125, expect.stringMatching(/^bunker: container (c|[0-9a-f]{12}) was removed (meanwhile|\(by 'bunker rm'\) while it started)\n$/)]);
        expect(listed).toEqual([]);
      } else {
        // the restart made it first: rm finds it running (refused), or not yet running, as Docker's created (removed)
        if (rc === 0) expect([sc, serr]).toEqual([sc, sc === 0 ? "" : "bunker: container c was removed (by 'bunker rm') while it started\n"]);
        if (rc === 0) expect(listed).toEqual([]);
        else {
          expect([rc, rerr]).toEqual([125, "bunker: container c is running: stop it first, or use 'rm -f'\n"]);
          expect(listed.map((c) => [c.name, c.state])).toEqual([["c", "running"]]);
          expect(inStore(a.env, ["rm", "-f", "c"]).code).toBe(0);
        }
      }
      expect(readdirSync(join(a.dir, "bunker/containers"))).toEqual([]);
    }
  });

  test("rmi NAME while a tag moves that name to another image takes the name from where it is then, never the image it left", async () => {
    const w = workdir();
    const a = freshStore();
    const base = rootfsDir(w);
    expect(inStore(a.env, ["import", tarOf(base, join(w, "x.tar")), "--name", "x"]).code).toBe(0);
    expect(inStore(a.env, ["tag", "x", "y"]).code).toBe(0);
    sh(`echo other > ${base}/other`);
    expect(inStore(a.env, ["import", tarOf(base, join(w, "o.tar")), "--name", "other"]).code).toBe(0);
    // the tag waits for the index first, then the rmi
    const [tag, rmi] = await queued(a.env, join(a.dir, "bunker/lock"), ["tag", "other", "x"], ["rmi", "x"]);
    // whichever decides first (both pass a sweep first): the name x goes, from where it is then, and no image is deleted
    expect([await tag.exited, await rmi.exited, await new Response(rmi.stdout).text()]).toEqual([0, 0, "Untagged: x:latest\n"]);
    const images = JSON.parse(inStore(a.env, ["images", "--json"]).stdout) as { names: string[] }[];
    expect(images.map((i) => i.names.filter((n) => n !== "x:latest")).sort()).toEqual([["other:latest"], ["y:latest"]]);
  });

  test("an rmi while a run makes a container of the image: the run says the image went, or the rmi that the container uses it, and nothing is left half", async () => {
    const w = workdir();
    const tar = tarOf(rootfsDir(w), join(w, "base.tar"));
    const a = freshStore();
    const lock = join(a.dir, "bunker/lock");
    for (const rmiFirst of [true, false]) {
      expect(inStore(a.env, ["import", tar, "--name", "a"]).code).toBe(0);
      const run = ["run", "--name", "user", "--network", "none", "a", "true"];
      const [m, r] = rmiFirst ? await queued(a.env, lock, ["rmi", "a"], run) : (await queued(a.env, lock, run, ["rmi", "a"])).toReversed();
      const [rc, mc] = await Promise.all([r.exited, m.exited]);
      const [rerr, merr] = await Promise.all([new Response(r.stderr).text(), new Response(m.stderr).text()]);
      // whichever decides first under the index's lock wins (waiting first does not make it so: both pass a sweep first)
      if (mc === 0) {
        expect([rc, rerr]).toEqual([125, expect.stringMatching(/^bunker: (image a was removed \(by 'bunker rmi'\) while the container was made: import it again|a: no such image in the store, .*)\n$/)]);
        expect(JSON.parse(inStore(a.env, ["ps", "-a", "--json"]).stdout)).toEqual([]);
        expect(readdirSync(join(a.dir, "bunker", "layers"))).toEqual([]);
      } else {
        expect([rc, mc, merr]).toEqual([0, 125, "bunker: image a is used by container user: remove that first ('bunker rm'), or only untag it: 'bunker rmi -f'\n"]);
        expect(inStore(a.env, ["restart", "user"]).code).toBe(0); // its image and layers are there
        expect(inStore(a.env, ["rm", "-f", "user"]).code).toBe(0);
        expect(inStore(a.env, ["rmi", "a"]).code).toBe(0);
      }
    }
  });
});

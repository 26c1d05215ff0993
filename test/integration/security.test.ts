// DESIGN.md §3: the runtime executable out of reach, and hosts that lack
// something told what is missing.
import { describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { asRoot, asUser, runSh, setup } from "./harness.ts";
import { freshStore, rootfsDir, tarOf, workdir } from "./store.ts";

const h = setup();
const sha = (p: string) => new Bun.CryptoHasher("sha256").update(readFileSync(p)).digest("hex");

describe("the runtime executable (runc CVE-2019-5736 class)", () => {
  test("no process in the container runs, or can open, the runtime's executable", () => {
    const before = sha(h.bin);
    // every way in: any exe link or mapped file in the container's /proc, and
    // under --init PID 1 (the sealed stage): its exe, its fds, its memory
    const look = "for p in /proc/[0-9]*; do readlink $p/exe; done";
    const writeMaps = "for f in /proc/[0-9]*/map_files/*; do (exec 3<>$f) 2>/dev/null && echo write-map $f; done";
    const pid1 = [
      "(cat /proc/1/exe > /dev/null) 2>/dev/null && echo read-exe",
      "(exec 3<>/proc/1/exe) 2>/dev/null && echo write-exe",
      "(ls /proc/1/fd /proc/1/map_files) >/dev/null 2>&1 && echo list-fds",
      "(exec 3</proc/1/mem) 2>/dev/null && echo read-mem",
    ];
    for (const [opts, attack] of [
      [["--init"], [look, ...pid1, writeMaps, "echo done"].join("; ")],
      [[], [look, writeMaps, "echo done"].join("; ")],
    ] as const) {
      const r = runSh(attack, [...opts]);
      expect(r.code).toBe(0);
      const out = r.stdout.trim().split("\n");
      expect(out.at(-1)).toBe("done");
      expect(out.filter((l) => /read-exe|write-exe|list-fds|read-mem|write-map/.test(l))).toEqual([]);
      // exe links name only programs of the container's root filesystem
      expect(out.filter((l) => l.includes("bunker") || l.includes(h.dir))).toEqual([]);
    }
    expect(sha(h.bin)).toBe(before);
  });

  test("under --init, PID 1 is the sealed stage, which the container cannot inspect", () => {
    const r = runSh("cat /proc/1/comm; stat -c %U /proc/1/exe; readlink /proc/1/exe || echo no-readlink", ["--init"]);
    const out = r.stdout.trim().split("\n");
    expect(out[0]).toBe("bunker-init");
    // non-dumpable: its /proc entries belong to the host's root, unmapped here
    expect(out[1]).toBe("nobody");
    expect(out[2]).toBe("no-readlink");
  });
});

describe("the directory bunker runs in", () => {
  test("sets nothing: no .env is read, no bunfig.toml preloads code", () => {
    // a Bun executable reads both from its working directory unless built not to
    const dir = mkdtempSync("/tmp/bunker-cwd-");
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, ".env"), "BUNKER_PLAN=1\nBUNKER_LOG_LEVEL=debug\n");
    writeFileSync(join(dir, "bunfig.toml"), 'preload = ["./preload.ts"]\n');
    writeFileSync(join(dir, "preload.ts"), 'console.error("preloaded");\n');
    const p = Bun.spawnSync(asUser([h.bin, "run", "--network", "none", h.main.rootfs, "/bin/echo", "ran"]), { cwd: dir, stderr: "pipe", stdout: "pipe" });
    rmSync(dir, { recursive: true });
    expect(p.stdout.toString()).toBe("ran\n");
    expect(p.stderr.toString()).not.toContain("preloaded");
    expect(p.stderr.toString()).not.toContain("create namespaces");
    expect(p.exitCode).toBe(0);
  });
});

describe("a host without user namespaces", () => {
  test("unprivileged user namespaces disabled: the sysctl to set", () => {
    // user.max_user_namespaces is per user namespace: set it to 0 in one of our own
    const r = Bun.spawnSync(asUser(["unshare", "-U", "-r", "sh", "-c", `echo 0 > /proc/sys/user/max_user_namespaces && exec ${h.bin} run ${h.main.rootfs} true`]), {
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(r.exitCode).toBe(125);
    expect(r.stderr.toString().trim()).toBe(
      "bunker: unprivileged user namespaces are disabled (user.max_user_namespaces=0): run 'sudo sysctl -w user.max_user_namespaces=15000'",
    );
  });
});

describe.skipIf(!asRoot)("a host that lacks something else", () => {
  const sh = (script: string) => Bun.spawnSync(["sh", "-c", script], { stdout: "pipe", stderr: "pipe" });
  const user = asUser([h.bin, "run", h.main.rootfs, "cat", "/proc/self/uid_map"]).map((a) => `'${a}'`).join(" ");

  test("newuidmap missing: a one-id map and the package to install", () => {
    const r = sh(`unshare -m sh -c "mount --bind /dev/null /usr/bin/newuidmap && exec ${user.replaceAll('"', '\\"')}"`);
    expect(r.exitCode).toBe(0);
    expect(r.stdout.toString().trim().split(/\s+/)).toEqual(["0", String(h.main.uid), "1"]);
    expect(r.stderr.toString()).toContain("newuidmap/newgidmap not found: using a one-id map (install the uidmap package");
  });

  test("a read-only state directory: what failed and what to set", () => {
    const dir = mkdtempSync(join(h.dir, "ro-"));
    chmodSync(dir, 0o777);
    const cmd = asUser([h.bin, "run", h.main.rootfs, "true"], { env: { XDG_RUNTIME_DIR: dir } }).map((a) => `'${a}'`).join(" ");
    const r = sh(`unshare -m sh -c "mount --bind -o ro ${dir} ${dir} && exec ${cmd.replaceAll('"', '\\"')}"`);
    expect(r.exitCode).toBe(125);
    expect(r.stderr.toString().trim()).toBe(
      `bunker: cannot use the state directory ${dir}/bunker: read-only file system; set XDG_RUNTIME_DIR to a writable directory`,
    );
  });

  test("an image store it cannot write: what failed and what to set", () => {
    const dir = mkdtempSync(join(h.dir, "nodata-"));
    chmodSync(dir, 0o555);
    const r = Bun.spawnSync(asUser([h.bin, "rmi", "x"], { env: { XDG_DATA_HOME: dir } }), { stderr: "pipe", stdout: "pipe" });
    expect(r.exitCode).toBe(125);
    expect(r.stderr.toString()).toBe(`bunker: cannot use the image store ${dir}/bunker: permission denied; set XDG_DATA_HOME to a writable directory\n`);
  });

  test("memfds not executable (vm.memfd_noexec=2): a copy in the state directory, unless it is noexec", () => {
    const dir = mkdtempSync(join(h.dir, "noexec-"));
    chmodSync(dir, 0o777);
    const quote = (argv: string[]) => argv.map((a) => `'${a}'`).join(" ");
    const run = (what: string) => quote(asUser([h.bin, "run", h.main.rootfs, "echo", what], { env: { XDG_RUNTIME_DIR: dir } }));
    // the store's commands spawn the stage rather than becoming it: the same copy serves them
    const w = workdir();
    const tar = tarOf(rootfsDir(w), join(w, "base.tar"));
    const store = freshStore();
    const imp = quote(asUser([h.bin, "import", tar, "--name", "noexec"], { env: { XDG_RUNTIME_DIR: dir, ...store.env } }));
    // vm.memfd_noexec belongs to the PID namespace: set it in a new one
    const r = sh(
      `unshare -p -f -m --mount-proc sh -c "echo 2 > /proc/sys/vm/memfd_noexec && ${run("via-copy")} && ${imp} && mount -t tmpfs -o noexec,mode=777 tmpfs ${dir} && ${run("never")}"`,
    );
    expect(r.stdout.toString()).toMatch(/^via-copy\nnoexec:latest sha256:[0-9a-f]{64}\n$/);
    expect(r.stderr.toString().trim()).toBe(
      `bunker: cannot execute the C stage: this kernel forbids executing memfds (vm.memfd_noexec) and ${dir}/bunker is mounted noexec; set XDG_RUNTIME_DIR to a directory on a file system that allows exec`,
    );
  });

  test("a /dev/null that is not the real device is refused, not bound", () => {
    const fake = join(h.dir, "fake-null");
    writeFileSync(fake, "not a device\n");
    const cmd = asUser([h.bin, "run", "--network", "none", h.main.rootfs, "true"]).map((a) => `'${a}'`).join(" ");
    const r = sh(`unshare -m sh -c "mount --bind ${fake} /dev/null && exec ${cmd.replaceAll('"', '\\"')}"`);
    expect(r.exitCode).toBe(125);
    expect(r.stderr.toString().trim()).toBe("bunker: bind /dev/null: ENODEV (No such device)");
  });
});

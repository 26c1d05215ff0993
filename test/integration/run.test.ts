// bunker run, checked from inside the container, as an unprivileged user.
import { describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MASKED_PATHS, READONLY_PATHS } from "../../src/spec/defaults.ts";
import { asRoot, asUser, bunker, runSh, setup } from "./harness.ts";

const h = setup();

describe("the container process", () => {
  test("is PID 1 in its own PID namespace, and host processes are invisible", () => {
    const r = runSh('echo "pid=$$"; ls -d /proc/[0-9]* | wc -l');
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const [pid, count] = r.stdout.trim().split("\n");
    expect(pid).toBe("pid=1");
    // sh, ls and wc at most: nothing of the host
    expect(Number(count)).toBeLessThanOrEqual(3);
  });

  test("runs as root of a user namespace mapped onto the caller and its subordinate range", () => {
    if (!h.main.subuid) return; // a caller without ranges is covered by the one-id tests
    const r = runSh("cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g");
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n").map((l) => l.trim().split(/\s+/).join(" "));
    expect(lines[0]).toBe(`0 ${h.main.uid} 1`);
    expect(lines[1]).toBe(`1 ${h.main.subuid.start} ${h.main.subuid.count}`);
    expect(lines[2]).toBe(`0 ${h.main.gid} 1`);
    expect(lines.slice(-2)).toEqual(["0", "0"]);
  });

  test("--userns=single maps only the caller, with setgroups denied", () => {
    const r = runSh("cat /proc/self/uid_map /proc/self/setgroups", ["--userns=single"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n").map((l) => l.trim().split(/\s+/).join(" "));
    expect(lines).toEqual([`0 ${h.main.uid} 1`, "deny"]);
  });

  test("a user without subordinate ids gets a one-id map and a notice", () => {
    if (!h.single) return;
    const r = runSh("cat /proc/self/uid_map; id -u", [], { user: h.single });
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split(/\s+/)).toEqual(["0", String(h.single.uid), "1", "0"]);
    expect(r.stderr).toContain("one-id map");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });

  test("has Docker's default environment", () => {
    const r = runSh("env | sort");
    expect(r.code).toBe(0);
    const env = Object.fromEntries(r.stdout.trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
    expect(env.PATH).toBe("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    expect(env.HOME).toBe("/root");
    expect(env.HOSTNAME).toMatch(/^[0-9a-f]{12}$/);
    expect(env.TERM).toBeUndefined();
    expect(env.USER).toBeUndefined(); // nothing leaks from the caller's environment
  });

  test("-e, --env-file, -w and -u set the environment, directory and user", () => {
    const envFile = join(h.dir, "envfile");
    writeFileSync(envFile, "# comment\nFROM_FILE=yes\nBOTH=file\n");
    chmodSync(envFile, 0o644);
    const r = runSh('echo "$FOO $FROM_FILE $BOTH $HOME"; pwd; id -u; id -g', [
      "-e", "FOO=bar", "--env-file", envFile, "-e", "BOTH=flag", "-w", "/work/dir", "-u", "1000:1000",
    ]);
    if (!h.main.subuid) {
      expect(r.code).toBe(125);
      expect(r.stderr).toContain("user 1000 is not mapped");
      return;
    }
    expect(r.stderr).toBe("");
    expect(r.stdout.trim().split("\n")).toEqual(["bar yes flag /", "/work/dir", "1000", "1000"]);
  });

  test("a user other than root has no capabilities; root has Docker's 14 and no_new_privs", () => {
    const root = runSh("grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status");
    expect(root.stdout).toContain("CapEff:\t00000000a80425fb");
    expect(root.stdout).toContain("CapBnd:\t00000000a80425fb");
    expect(root.stdout).toContain("NoNewPrivs:\t1");
    if (!h.main.subuid) return;
    const user = runSh("grep -E '^(CapEff|CapPrm|CapBnd)' /proc/self/status", ["-u", "1000"]);
    expect(user.stdout).toContain("CapEff:\t0000000000000000");
    expect(user.stdout).toContain("CapPrm:\t0000000000000000");
    expect(user.stdout).toContain("CapBnd:\t00000000a80425fb");
  });

  test("--cap-add and --cap-drop follow Docker's arithmetic", () => {
    const none = runSh("grep CapEff /proc/self/status", ["--cap-drop", "ALL"]);
    expect(none.stdout.trim()).toBe("CapEff:\t0000000000000000");
    const some = runSh("grep CapEff /proc/self/status", ["--cap-drop", "ALL", "--cap-add", "net_admin", "--cap-add", "CAP_CHOWN"]);
    expect(some.stdout.trim()).toBe(`CapEff:\t${((1n << 12n) | 1n).toString(16).padStart(16, "0")}`);
    const bad = runSh("true", ["--cap-add", "NOT_A_CAP"]);
    expect(bad.code).toBe(125);
    expect(bad.stderr).toContain('unknown capability "NOT_A_CAP"');
  });

  test("stdin is /dev/null without -i and the caller's with -i", () => {
    expect(runSh("cat", [], { stdin: "hello\n" }).stdout).toBe("");
    expect(runSh("cat", ["-i"], { stdin: "hello\n" }).stdout).toBe("hello\n");
  });

  test("only fds 0, 1 and 2 reach the container, whatever the caller holds open", () => {
    // spawn bunker with extra inherited fds (3 and 4) that are not close-on-exec
    const p = Bun.spawnSync(
      ["sh", "-c", `exec 3</etc/hostname 4</etc/passwd; exec "$@"`, "sh", ...asUser([h.bin, "run", h.main.rootfs, "/bin/sh", "-c", "ls /proc/$$/fd; true"])],
      { stdout: "pipe", stderr: "pipe" },
    );
    expect(p.stderr.toString()).toBe("");
    expect(p.stdout.toString().trim().split(/\s+/)).toEqual(["0", "1", "2"]);
  });

  test("without a tty the container gets a session of its own (no TIOCSTI into the caller's terminal)", () => {
    // field 6 of /proc/PID/stat is the session id: PID 1 leads its own
    expect(runSh("cut -d' ' -f6 /proc/$$/stat").stdout.trim()).toBe("1");
  });

  test("the working directory is inside the new root", () => {
    const r = runSh("readlink /proc/self/cwd; cd /tmp && readlink /proc/self/cwd", ["-w", "/"]);
    expect(r.stdout.trim().split("\n")).toEqual(["/", "/tmp"]);
  });
});

describe("the file system inside", () => {
  test("has a fresh /proc, a /dev of verified devices, devpts, shm and mqueue", () => {
    const r = runSh("ls /dev | sort | tr '\\n' ' '; echo; stat -c '%t:%T %F' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty; grep -E ' /dev/(pts|shm|mqueue) ' /proc/mounts | cut -d' ' -f2,3");
    expect(r.code).toBe(0);
    const [devs, ...rest] = r.stdout.trim().split("\n");
    expect(devs!.trim().split(" ")).toEqual(
      ["fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"],
    );
    expect(rest.slice(0, 6)).toEqual([
      "1:3 character special file", "1:5 character special file", "1:7 character special file",
      "1:8 character special file", "1:9 character special file", "5:0 character special file",
    ]);
    expect(rest.slice(6)).toEqual(["/dev/pts devpts", "/dev/shm tmpfs", "/dev/mqueue mqueue"]);
  });

  test("masks runc's default paths and keeps /proc/sys and /sys read-only", () => {
    // only the paths this kernel has; /proc/kcore, for one, is often absent
    const masked = MASKED_PATHS.filter((p) => existsSync(p));
    const readonly = READONLY_PATHS.filter((p) => existsSync(p));
    expect(masked).toContain("/proc/keys");
    const probe = masked.map((p) => `if [ -d ${p} ]; then ls -A ${p} | wc -l; else wc -c < ${p}; fi`).join("; ");
    const r = runSh(`${probe}; (echo x > /proc/sys/kernel/hostname) 2>&1; (touch /sys/x) 2>&1; cat /proc/self/mountinfo`);
    const lines = r.stdout.trim().split("\n");
    expect(lines.slice(0, masked.length).map((l) => l.trim())).toEqual(masked.map(() => "0"));
    expect(lines[masked.length]).toContain("Read-only file system");
    expect(lines[masked.length + 1]).toContain("Read-only file system");
    const mountOpts = (p: string) => lines.filter((l) => l.split(" ")[4] === p).map((l) => l.split(" ")[5]!.split(","));
    for (const p of [...readonly, "/sys"]) expect(mountOpts(p).at(-1)).toContain("ro");
  });

  test("generates /etc/hostname, /etc/hosts and /etc/resolv.conf; -h sets the host name", () => {
    const r = runSh("hostname; cat /etc/hostname; grep -c web1 /etc/hosts; test -f /etc/resolv.conf && echo resolv", ["-h", "web1", "--name", `n${process.pid}`]);
    expect(r.stdout.trim().split("\n")).toEqual(["web1", "web1", "1", "resolv"]);
    expect(runSh("hostname").stdout.trim()).toMatch(/^[0-9a-f]{12}$/);
  });

  test("volumes bind host paths, and :ro refuses writes", () => {
    const src = mkdtempSync(join(h.dir, "vol-"));
    chmodSync(src, 0o777);
    writeFileSync(join(src, "in"), "from host\n");
    chmodSync(join(src, "in"), 0o666);
    const r = runSh("cat /data/in; echo from container > /data/out; cat /ro/in; (echo x > /ro/y) 2>/dev/null || echo refused; touch /ro/z", [
      "-v", `${src}:/data`, "-v", `${src}:/ro:ro`,
    ]);
    expect(r.stdout.trim().split("\n")[0]).toBe("from host");
    expect(r.stdout).toContain("refused");
    expect(r.stderr).toContain("touch: /ro/z: Read-only file system");
    expect(existsSync(join(src, "z"))).toBe(false);
    expect(readFileSync(join(src, "out"), "utf8")).toBe("from container\n");
  });

  test("--read-only keeps the root read-only but /dev/shm and --tmpfs writable", () => {
    const r = runSh("touch /x 2>/dev/null || echo ro-root; touch /dev/shm/x && echo shm-ok; touch /scratch/x && echo tmpfs-ok", [
      "--read-only", "--tmpfs", "/scratch",
    ]);
    expect(r.stdout.trim().split("\n")).toEqual(["ro-root", "shm-ok", "tmpfs-ok"]);
  });

  test("a symlink in the image cannot redirect a volume or a default mount out of the root", () => {
    // an image whose /data and /proc are links that climb out of the root
    const rootfs = mkdtempSync(join(h.dir, "evil-"));
    Bun.spawnSync(["cp", "-a", `${h.main.rootfs}/.`, rootfs]);
    const outside = mkdtempSync(join(h.dir, "outside-"));
    rmSync(join(rootfs, "data"), { recursive: true, force: true });
    symlinkSync(`/../../../..${outside}/x`, join(rootfs, "data"));
    rmSync(join(rootfs, "proc"), { recursive: true });
    symlinkSync(`/../../../..${outside}/proc`, join(rootfs, "proc"));
    if (asRoot) Bun.spawnSync(["chown", "-R", "--no-dereference", `${h.main.uid}:${h.main.gid}`, rootfs, outside]);
    const vol = mkdtempSync(join(h.dir, "vol-"));
    chmodSync(vol, 0o755);
    writeFileSync(join(vol, "marker"), "volume\n");
    chmodSync(join(vol, "marker"), 0o644);
    const r = Bun.spawnSync(asUser([h.bin, "run", "-v", `${vol}:/data`, rootfs, "/bin/sh", "-c", "cat /data/marker; ls /proc/self/ >/dev/null && echo proc-ok"]), {
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(r.stdout.toString().trim().split("\n")).toEqual(["volume", "proc-ok"]);
    // the mounts landed inside the root, where the links point when resolved there
    expect(existsSync(join(rootfs, outside, "x"))).toBe(true);
    expect(existsSync(join(rootfs, outside, "proc"))).toBe(true);
    // and nothing was created or mounted at the real path outside
    expect(existsSync(join(outside, "x"))).toBe(false);
    expect(existsSync(join(outside, "proc"))).toBe(false);
  });
});

describe("exit status", () => {
  test("is the container's own: 0 and 42", () => {
    expect(runSh("exit 0").code).toBe(0);
    expect(runSh("exit 42").code).toBe(42);
  });

  test("is 128+N for a death by signal N (137 for SIGKILL)", async () => {
    // PID 1 ignores even SIGKILL from inside its namespace; under --init the command is PID 2
    expect(runSh("kill -9 $$", ["--init"]).code).toBe(137);
    expect(runSh("kill -TERM $$", ["--init"]).code).toBe(143);
    // and a SIGKILL from the host to the container's PID 1
    // (--network none: the stage's only child is the container, no network helper beside it)
    const p = Bun.spawn(asUser([h.bin, "run", "--network", "none", h.main.rootfs, "/bin/sh", "-c", "echo up; sleep 10"]), { stdout: "pipe" });
    await p.stdout.getReader().read();
    const kids = readFileSync(`/proc/${p.pid}/task/${p.pid}/children`, "utf8").trim();
    process.kill(Number(kids), "SIGKILL");
    expect(await p.exited).toBe(137);
  });

  test("is 126 when the command cannot be invoked, 127 when it is not found", () => {
    const noexec = bunker(["run", h.main.rootfs, "/etc/passwd"]);
    expect(noexec.code).toBe(126);
    expect(noexec.stderr).toContain('exec "/etc/passwd": EACCES');
    const missing = bunker(["run", h.main.rootfs, "no-such-command"]);
    expect(missing.code).toBe(127);
    expect(missing.stderr.trim()).toBe('bunker: exec "no-such-command": executable file not found in $PATH');
  });

  test("is 125 for bunker's own errors, with a one-line message", () => {
    const flag = bunker(["run", "--no-such-flag", h.main.rootfs]);
    expect(flag.code).toBe(125);
    expect(flag.stderr.trim()).toBe("bunker: unknown flag: --no-such-flag (see 'bunker run --help')");
    const missing = bunker(["run", "/nonexistent/rootfs", "true"]);
    expect(missing.code).toBe(125);
    expect(missing.stderr.trim()).toBe("bunker: /nonexistent/rootfs: no such directory: give a root filesystem directory or an OCI bundle");
    const volume = bunker(["run", "-v", "relative:/x", h.main.rootfs, "true"]);
    expect(volume.code).toBe(125);
    expect(volume.stderr).toContain("the source must be an absolute host path");
  });
});

describe("signals", () => {
  test.each(["TERM", "INT", "HUP", "QUIT", "USR1", "USR2", "WINCH"])("SIG%s reaches the container's process", async (sig) => {
    const p = Bun.spawn(
      asUser([h.bin, "run", h.main.rootfs, "/bin/sh", "-c", `trap 'echo got ${sig}; exit 7' ${sig}; echo ready; while :; do sleep 0.05; done`]),
      { stdout: "pipe", stderr: "pipe" },
    );
    const reader = p.stdout.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe("ready\n");
    process.kill(p.pid, `SIG${sig}` as NodeJS.Signals);
    const rest = await reader.read();
    expect(new TextDecoder().decode(rest.value)).toBe(`got ${sig}\n`);
    expect(await p.exited).toBe(7);
  });

  test("--init reaps orphaned zombies that a plain PID 1 leaves behind", () => {
    // an orphan exits under PID 1 while a watcher looks for zombies; PID 1 is
    // `sleep`, which never reaps, unless --init stands in front of it
    const script = "(sleep 0.1 &); (sleep 0.6; grep -l '^State:.*Z' /proc/[0-9]*/status | wc -l) & exec sleep 1";
    const plain = runSh(script);
    expect(Number(plain.stdout.trim())).toBeGreaterThan(0);
    const init = runSh(script, ["--init"]);
    expect(init.code).toBe(0);
    expect(Number(init.stdout.trim())).toBe(0);
    expect(runSh("cat /proc/1/comm; echo $$", ["--init"]).stdout.trim().split("\n")).toEqual(["bunker-init", "2"]);
  });

  test("--init forwards signals to the command and exits with its status", async () => {
    const p = Bun.spawn(asUser([h.bin, "run", "--init", h.main.rootfs, "/bin/sh", "-c", "trap 'exit 9' TERM; echo ready; while :; do sleep 0.05; done"]), {
      stdout: "pipe",
    });
    const reader = p.stdout.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("ready\n");
    process.kill(p.pid, "SIGTERM");
    expect(await p.exited).toBe(9);
  });
});

describe("network", () => {
  test("--network none has only lo, and it is up", () => {
    const r = runSh("cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags", ["--network", "none"]);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toBe("lo");
    expect(lines).toHaveLength(3);
    expect(Number(lines[2]) & 1).toBe(1); // IFF_UP
  });

  test("--network host shares the host's interfaces", () => {
    const host = readFileSync("/proc/net/dev", "utf8").split("\n").length;
    const r = runSh("cat /proc/net/dev | wc -l", ["--network", "host"]);
    expect(Number(r.stdout.trim())).toBe(host - 1);
  });

  test("the host's abstract unix sockets are out of reach with --network none", async () => {
    const name = `bunker-test-${process.pid}`;
    const server = Bun.listen({ unix: `\0${name}`, socket: { data() {} } });
    try {
      const none = runSh(`abstract-connect ${name}`);
      expect(none.stdout.trim()).toBe("connect: Connection refused");
      const host = runSh(`abstract-connect ${name}`, ["--network", "host"]);
      expect(host.stdout.trim()).toBe("connected"); // the same probe does reach it when shared
    } finally {
      server.stop(true);
    }
  });
});

describe("names", () => {
  test("a name in use by a running container is refused; a finished one is free again", async () => {
    const name = `busy${process.pid}`;
    const p = Bun.spawn(asUser([h.bin, "run", "--name", name, h.main.rootfs, "/bin/sh", "-c", "echo up; sleep 5"]), { stdout: "pipe" });
    await p.stdout.getReader().read();
    const second = runSh("true", ["--name", name]);
    expect(second.code).toBe(125);
    expect(second.stderr).toContain(`the container name "${name}" is already in use`);
    p.kill("SIGKILL"); // kill -9 of the stage: the next run takes over the stale name
    await p.exited;
    expect(runSh("true", ["--name", name]).code).toBe(0);
  });
});

describe("bundles", () => {
  /** Point a generated config.json at the test rootfs, to run `sh -c script` without a terminal. */
  function pointAt(bundle: string, script: string): any {
    const path = join(bundle, "config.json");
    const config = JSON.parse(readFileSync(path, "utf8"));
    config.process.terminal = false;
    config.process.args = ["/bin/sh", "-c", script];
    config.root.path = h.main.rootfs;
    writeFileSync(path, JSON.stringify(config));
    return config;
  }
  /** The same, then run it with bunker. */
  function runGenerated(bundle: string, script: string): { config: any; r: ReturnType<typeof bunker> } {
    const config = pointAt(bundle, script);
    return { config, r: bunker(["run", bundle]) };
  }

  test("bunker spec --rootless writes a config.json that bunker runs", () => {
    const bundle = mkdtempSync(join(h.dir, "bundle-"));
    chmodSync(bundle, 0o777);
    const spec = bunker(["spec", "--rootless", "--bundle", bundle]);
    expect(spec.code).toBe(0);
    const again = bunker(["spec", "--rootless", "--bundle", bundle]);
    expect(again.code).toBe(125);
    expect(again.stderr).toContain("exists: remove it first");
    const { config, r } = runGenerated(bundle, "hostname; cat /proc/self/uid_map | wc -l; touch /x 2>/dev/null || echo ro");
    expect(config.linux.uidMappings).toEqual([{ containerID: 0, hostID: h.main.uid, size: 1 }]);
    expect(r.stderr).toBe("");
    expect(r.stdout.trim().split("\n")).toEqual(["bunker", "1", "ro"]);
  });

  // `bunker spec` must write what the other runtimes accept. crun refuses a
  // hybrid cgroup host, so under root it runs where the empty cgroup2 is hidden.
  for (const rt of ["runc", "crun"]) {
    const installed = Bun.spawnSync(["sh", "-c", `command -v ${rt}`]).exitCode === 0;
    test.skipIf(!installed || (rt === "crun" && !asRoot))(`${rt} runs what \`bunker spec --rootless\` writes`, () => {
      const bundle = mkdtempSync(join(h.dir, `spec-${rt}-`));
      chmodSync(bundle, 0o777);
      expect(bunker(["spec", "--rootless", "--bundle", bundle]).code).toBe(0);
      pointAt(bundle, "echo ran-$(hostname)");
      const state = mkdtempSync(join(h.dir, `${rt}-state-`));
      chmodSync(state, 0o777);
      const cmd = asUser([rt, "--root", state, "run", "--bundle", bundle, `c${process.pid}`]);
      const hide = "mountpoint -q /sys/fs/cgroup/unified && mount -t tmpfs none /sys/fs/cgroup/unified; exec \"$@\"";
      const r = Bun.spawnSync(asRoot ? ["unshare", "-m", "--propagation", "private", "sh", "-c", hide, "sh", ...cmd] : cmd, { stdout: "pipe", stderr: "pipe" });
      expect(r.stderr.toString()).toBe("");
      expect(r.stdout.toString()).toBe("ran-bunker\n");
    });
  }

  test("a bundle's command can be replaced on the command line", () => {
    const bundle = mkdtempSync(join(h.dir, "bundle-"));
    chmodSync(bundle, 0o755);
    writeFileSync(
      join(bundle, "config.json"),
      JSON.stringify({ ociVersion: "1.0.2", process: { user: { uid: 0, gid: 0 }, args: ["false"], cwd: "/" }, root: { path: h.main.rootfs }, linux: { namespaces: [{ type: "pid" }, { type: "mount" }] } }),
    );
    const r = bunker(["run", bundle, "echo", "replaced"]);
    expect(r.stdout).toBe("replaced\n");
  });

  for (const rt of ["crun", "runc"]) {
    const installed = Bun.spawnSync(["sh", "-c", `command -v ${rt}`]).exitCode === 0;
    test.skipIf(!installed)(`a bundle written by \`${rt} spec --rootless\` runs`, () => {
      const bundle = mkdtempSync(join(h.dir, `${rt}-`));
      chmodSync(bundle, 0o777);
      const made = Bun.spawnSync(asUser(["sh", "-c", `cd ${bundle} && ${rt} spec --rootless`]));
      expect(made.exitCode).toBe(0);
      const { r } = runGenerated(bundle, "hostname; id -u; grep CapEff /proc/self/status");
      expect(r.stderr).toBe("");
      // its three capabilities: AUDIT_WRITE, KILL, NET_BIND_SERVICE
      expect(r.stdout.trim().split("\n")).toEqual([rt, "0", "CapEff:\t0000000020000420"]);
    });
  }
});

describe("bad input and odd hosts", () => {
  const bundleWith = (config: unknown) => {
    const bundle = mkdtempSync(join(h.dir, "bad-"));
    chmodSync(bundle, 0o755);
    writeFileSync(join(bundle, "config.json"), typeof config === "string" ? config : JSON.stringify(config));
    chmodSync(join(bundle, "config.json"), 0o644);
    return bundle;
  };

  test("a malformed config.json is one line naming the field, exit 125", () => {
    const r = bunker(["run", bundleWith({ ociVersion: "1.0.2", root: { path: h.main.rootfs }, process: { cwd: "/", env: ["A=1", 7] } })]);
    expect(r.code).toBe(125);
    expect(r.stderr.trim()).toMatch(/^bunker: \S+\/config.json is not an OCI runtime config: config.json.process.user is missing \(and 1 more problems\)$/);
    const notJson = bunker(["run", bundleWith("{ not json")]);
    expect(notJson.code).toBe(125);
    expect(notJson.stderr).toContain("is not valid JSON");
    expect(notJson.stderr.trim().split("\n")).toHaveLength(1);
  });

  test("a config.json that cannot be read is an error, not a plain root filesystem", () => {
    const bundle = mkdtempSync(join(h.dir, "unreadable-"));
    chmodSync(bundle, 0o755);
    Bun.spawnSync(["mkdir", join(bundle, "config.json")]);
    const r = bunker(["run", bundle, "true"]);
    expect(r.code).toBe(125);
    expect(r.stderr.trim()).toBe(`bunker: cannot read ${bundle}/config.json: is a directory`);
  });

  test("a FIFO for /etc/group in the image does not hang bunker", () => {
    const rootfs = mkdtempSync(join(h.dir, "fifo-"));
    Bun.spawnSync(["cp", "-a", `${h.main.rootfs}/.`, rootfs]);
    rmSync(join(rootfs, "etc/group"));
    Bun.spawnSync(["mkfifo", join(rootfs, "etc/group")]);
    if (asRoot) Bun.spawnSync(["chown", "-R", `${h.main.uid}:${h.main.gid}`, rootfs]);
    const r = bunker(["run", rootfs, "/bin/echo", "ran"], { timeout: 10000 });
    expect(r.stdout).toBe("ran\n");
  });

  test("generated /etc files are readable by any user, whatever the caller's umask", () => {
    if (!h.main.subuid) return;
    const r = Bun.spawnSync(asUser(["sh", "-c", `umask 077; exec ${h.bin} run -u 1000 ${h.main.rootfs} /bin/sh -c 'cat /etc/hosts /etc/hostname >/dev/null && echo readable'`]), {
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(r.stderr.toString()).toBe("");
    expect(r.stdout.toString()).toBe("readable\n");
  });

  test("--read-only with a -w that does not exist yet", () => {
    const r = runSh("pwd", ["--read-only", "-w", `/new-${process.pid}/dir`]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(`/new-${process.pid}/dir\n`);
  });

  test("masks and read-only paths hold in a bundle that mounts no /proc", () => {
    const bundle = bundleWith({
      ociVersion: "1.0.2",
      process: { user: { uid: 0, gid: 0 }, args: ["/bin/sh", "-c", "touch /etc/x 2>&1; ls -A /sys/firmware | wc -l"], cwd: "/", env: ["PATH=/bin"] },
      root: { path: h.main.rootfs },
      mounts: [{ destination: "/sys", type: "sysfs", source: "sysfs", options: ["ro"] }],
      linux: { namespaces: [{ type: "mount" }, { type: "network" }, { type: "pid" }], maskedPaths: ["/sys/firmware"], readonlyPaths: ["/etc"] },
    });
    const r = bunker(["run", bundle]);
    expect(r.stdout.trim().split("\n")).toEqual(["touch: /etc/x: Read-only file system", "0"]);
  });

  test("the container dies with bunker, also after it switched to another user", async () => {
    if (!h.main.subuid) return;
    const p = Bun.spawn(asUser([h.bin, "run", "--network", "none", "-u", "1000", h.main.rootfs, "/bin/sh", "-c", "echo up; sleep 30"]), { stdout: "pipe" });
    await p.stdout.getReader().read();
    const child = Number(readFileSync(`/proc/${p.pid}/task/${p.pid}/children`, "utf8").trim());
    expect(child).toBeGreaterThan(0);
    p.kill("SIGKILL");
    await p.exited;
    // gone, or a zombie waiting for the host's init to reap it
    const alive = () => {
      const stat = existsSync(`/proc/${child}/stat`) ? readFileSync(`/proc/${child}/stat`, "utf8") : "";
      return stat !== "" && stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
    };
    for (let i = 0; i < 100 && alive(); i++) await Bun.sleep(20);
    expect(alive()).toBe(false);
  });

  test("closed stdin, stdout and stderr do not confuse the stage", () => {
    const r = Bun.spawnSync(["sh", "-c", `exec "$@" 0<&- 2>&-`, "sh", ...asUser([h.bin, "run", h.main.rootfs, "/bin/sh", "-c", "echo out; ls /proc/self/fd | wc -l"])], {
      stdout: "pipe",
    });
    expect(r.stdout.toString().trim().split("\n")).toEqual(["out", "4"]); // 0, 1, 2 and ls's own
  });
});


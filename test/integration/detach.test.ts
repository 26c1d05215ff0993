// Detached containers: run -d, the C supervisor, logs, exec, the verbs, and
// a state that stays true when bunker or the supervisor is killed.
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { asUser, bunker, type RunOpts, setup } from "./harness.ts";
import { freshStore, rootfsDir, tarOf, workdir } from "./store.ts";

const h = setup();
const u = h.main;

/** A private runtime directory (XDG_RUNTIME_DIR) and store for this file's containers. */
const store = freshStore();
const env = store.env;
const runtime = env.XDG_RUNTIME_DIR!;
const state = join(runtime, "bunker");

const b = (args: string[], opts: RunOpts = {}) => bunker(args, { ...opts, env: { ...env, ...opts.env } });
const ok = (args: string[], opts: RunOpts = {}) => {
  const r = b(args, opts);
  if (r.code !== 0) throw new Error(`bunker ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout.trim();
};
/** run -d ROOTFS sh -c SCRIPT; returns the id. */
const detach = (script: string, opts: string[] = []) => ok(["run", "-d", ...opts, u.rootfs, "/bin/sh", "-c", script]);

async function until(what: string, cond: () => boolean, ms = 10000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; await Bun.sleep(50)) if (cond()) return;
  throw new Error(`timed out waiting for ${what}`);
}

const status = (ref: string) => (JSON.parse(ok(["inspect", "--json", ref]))[0] as { State: { Status: string; ExitCode: number; Pid: number } }).State;

/** The pids the stage recorded: its own and the container's. */
function pidsOf(id: string): { stage: number; pid: number } {
  const f = readFileSync(join(state, "containers", id, "pid"), "utf8").split(" ");
  return { stage: Number(f[0]), pid: Number(f[2]) };
}

/** A live process (zombies wait for this machine's init to reap them, and hold nothing). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3));
  } catch {
    return false;
  }
}

/** Nothing left of this file's containers: no entries in the state, no processes. */
async function nothingLeft(pids: number[]): Promise<void> {
  expect(readdirSync(join(state, "containers"))).toEqual([]);
  expect(readdirSync(join(state, "names"))).toEqual([]);
  const stored = join(store.dir, "bunker", "containers");
  if (existsSync(stored)) expect(readdirSync(stored)).toEqual([]);
  await until("the processes to end", () => pids.every((p) => !running(p)));
}

afterAll(() => {
  b(["rm", "-f", ...ok(["ps", "-aq"]).split("\n").filter(Boolean)]);
});

describe("run -d", () => {
  test("prints the id, returns at once, and the container runs on; ps shows it by a generated name", async () => {
    const id = detach("sleep 100");
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const ps = JSON.parse(ok(["ps", "--json"])) as { id: string; name: string; state: string; pid: number }[];
    const me = ps.find((c) => c.id === id)!;
    expect(me.state).toBe("running");
    expect(me.name).toMatch(/^[a-z]+_[a-z]+(_\d+)?$/);
    expect(ok(["ps", "-q"]).split("\n")).toContain(id.slice(0, 12));
    // the stage supervises it: the container's PID 1 is its child, and bunker (Bun) is gone
    const { stage, pid } = pidsOf(id);
    expect(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[1]).toBe(String(stage));
    expect(readFileSync(`/proc/${stage}/comm`, "utf8").trim()).toBe("bunker");
    // ≤ 1 MB resident: the supervisor is the freestanding C stage, not Bun
    const rss = Number(readFileSync(`/proc/${stage}/status`, "utf8").match(/VmRSS:\s+(\d+)/)![1]);
    expect(rss).toBeLessThan(1024);
    ok(["rm", "-f", id]);
    await nothingLeft([stage, pid]);
  });

  test("a command that cannot run fails at once with Docker's code, and leaves nothing", async () => {
    const r = b(["run", "-d", "--name", "bad", u.rootfs, "no-such-command"]);
    expect(r.code).toBe(127);
    expect(r.stderr).toContain('exec "no-such-command": executable file not found in $PATH');
    expect(r.stdout).toBe("");
    // with --rm too: the removal after the failure does not pass for a start
    const rm = b(["run", "-d", "--rm", u.rootfs, "no-such-command"]);
    expect([rm.code, rm.stdout]).toEqual([127, ""]);
    await nothingLeft([]);
  });

  test("a taken name, an unknown container, and exec into a stopped one are errors (125)", () => {
    const id = detach("sleep 100", ["--name", "taken"]);
    let r = b(["run", "-d", "--name", "taken", u.rootfs, "true"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain(`the container name "taken" is already in use by container ${id.slice(0, 12)}`);
    r = b(["logs", "nosuch"]);
    expect([r.code, r.stderr.trim()]).toEqual([125, "bunker: no such container: nosuch (see 'bunker ps -a')"]);
    ok(["stop", "-t", "0", "taken"]);
    r = b(["exec", "taken", "true"]);
    expect([r.code, r.stderr.trim()]).toEqual([125, "bunker: container taken is not running: cannot exec into it"]);
    r = b(["rm", "taken"]);
    expect(r.code).toBe(0);
  });

  test("--rm removes the container when it exits; wait still gets its status", async () => {
    const id = detach("exit 0", ["--rm"]);
    await until("the container to go", () => !existsSync(join(state, "containers", id)));
    expect(b(["inspect", id]).code).toBe(125);
    const waited = detach("sleep 0.5; exit 3", ["--rm"]);
    expect(b(["wait", waited]).stdout).toBe("3\n");
    await until("the container to go", () => !existsSync(join(state, "containers", waited)));
  });
});

describe("logs", () => {
  test("keep every line, in order and by stream, after the CLI has gone", async () => {
    const id = detach("i=1; while [ $i -le 300 ]; do echo out $i; echo err $i >&2; i=$((i+1)); done; printf 'no newline'", ["--name", "chatty"]);
    await until("the exit", () => status(id).Status === "exited");
    const r = b(["logs", "chatty"]);
    const want = (s: string) => Array.from({ length: 300 }, (_, i) => `${s} ${i + 1}`).join("\n");
    expect(r.stdout).toBe(`${want("out")}\nno newline`);
    expect(r.stderr).toBe(`${want("err")}\n`);
    // --tail counts lines (a last one without its newline too); -t shows when each was written
    const short = detach("echo a; echo b; echo c; printf d");
    await until("the exit", () => status(short).Status === "exited");
    const t = b(["logs", "--tail", "2", "-t", short]);
    expect(t.stdout.split("\n")).toEqual([expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z c$/), expect.stringMatching(/Z d$/)]);
    ok(["rm", short]);
    // --since: a time after everything was written shows nothing
    expect(b(["logs", "--since", new Date(Date.now() + 60_000).toISOString(), "chatty"]).stdout).toBe("");
    expect(b(["logs", "--since", "10m", "chatty"]).stdout).toBe(`${want("out")}\nno newline`);
    ok(["rm", "chatty"]);
  });

  test("-f follows until the container stops", () => {
    const id = detach("for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done");
    const r = b(["logs", "-f", id]);
    expect(r.stdout).toBe("line 1\nline 2\nline 3\nline 4\nline 5\n");
    ok(["rm", id]);
  });

  test("the log moves to log.1 at its size cap, and logs reads both", async () => {
    const id = detach("i=1; while [ $i -le 400 ]; do echo line-$i-padding-padding-padding; i=$((i+1)); done", ["--log-opt", "max-size=8k"]);
    await until("the exit", () => status(id).Status === "exited");
    const dir = join(state, "containers", id);
    expect(statSync(join(dir, "log")).size).toBeLessThanOrEqual(8192);
    expect(statSync(join(dir, "log.1")).size).toBeLessThanOrEqual(8192);
    const lines = b(["logs", id]).stdout.trim().split("\n");
    // what is kept is the newest output, whole lines in order, ending with the last
    expect(lines.at(-1)).toBe("line-400-padding-padding-padding");
    const first = Number(lines[0]!.split("-")[1]);
    expect(lines).toEqual(Array.from({ length: 401 - first }, (_, i) => `line-${first + i}-padding-padding-padding`));
    ok(["rm", id]);
  });
});

describe("exec", () => {
  test("joins every namespace of the container, as its user, with its environment", () => {
    const id = detach("sleep 100", ["--hostname", "box", "-e", "FROM_RUN=1"]);
    const inside = ok(["exec", id, "sh", "-c", "echo $$; hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; id -u; echo $FROM_RUN; readlink /proc/self/ns/pid"]).split("\n");
    const { pid } = pidsOf(id);
    expect(inside[0]).not.toBe("1");
    expect(inside[1]).toBe("box");
    expect(inside[2]).toBe("sleep 100 ");
    expect(inside[3]).toBe("0");
    expect(inside[4]).toBe("1");
    for (const ns of ["pid", "mnt", "user", "net", "uts", "ipc"]) {
      const mine = ok(["exec", id, "readlink", `/proc/self/ns/${ns}`]);
      expect(mine).toBe(Bun.spawnSync(["readlink", `/proc/${pid}/ns/${ns}`]).stdout.toString().trim());
    }
    expect(ok(["exec", id, "cat", "/proc/self/uid_map"])).toBe(readFileSync(`/proc/${pid}/uid_map`, "utf8").trim());
    ok(["rm", "-f", id]);
  });

  test("-u, -w, -e, exit codes, 126 and 127", () => {
    const id = detach("sleep 100");
    expect(ok(["exec", "-u", "1000:1000", "-w", "/tmp", "-e", "A=b", id, "sh", "-c", "id -u; id -g; pwd; echo $A; grep CapEff /proc/self/status"]).split("\n")).toEqual([
      "1000", "1000", "/tmp", "b", "CapEff:\t0000000000000000",
    ]);
    expect(b(["exec", id, "sh", "-c", "exit 7"]).code).toBe(7);
    expect(b(["exec", id, "no-such-command"]).code).toBe(127);
    expect(b(["exec", id, "/etc/passwd"]).code).toBe(126);
    ok(["rm", "-f", id]);
  });

  test("leaks no fds, is not dumpable while set up, and nothing inside reaches the runtime", () => {
    const id = detach("sleep 100");
    // only 0-2 (and ls's own directory fd)
    expect(ok(["exec", id, "ls", "/proc/self/fd"]).split("\n").sort()).toEqual(["0", "1", "2", "3"]);
    // every process the container can see runs a program of its own root
    const exes = ok(["exec", id, "sh", "-c", "for p in /proc/[0-9]*; do readlink $p/exe; done"]).split("\n");
    expect(exes.filter((e) => /bunker|memfd/.test(e))).toEqual([]);
    ok(["rm", "-f", id]);
  });

  test.skipIf(!h.single)("with a one-id map: exec as root works, another user is refused clearly", () => {
    const user = h.single!;
    const one = (args: string[]) => bunker(args, { user });
    const id = one(["run", "-d", user.rootfs, "sleep", "100"]).stdout.trim();
    expect(one(["exec", id, "cat", "/proc/self/uid_map"]).stdout.trim().split(/\s+/)).toEqual(["0", String(user.uid), "1"]);
    const r = one(["exec", "-u", "1000", id, "id"]);
    expect([r.code, r.stderr.trim()]).toEqual([125, "bunker: user 1000 is not mapped into the container (the uid map covers 0): add subordinate ids to /etc/subuid or run as root"]);
    expect(one(["rm", "-f", id]).code).toBe(0);
  });

  test("-d runs in the background", async () => {
    const id = detach("sleep 100");
    const r = b(["exec", "-d", id, "sh", "-c", "sleep 0.3; echo done > /tmp/marker"]);
    expect([r.code, r.stdout]).toEqual([0, ""]);
    await until("the background command", () => b(["exec", id, "cat", "/tmp/marker"]).stdout === "done\n");
    ok(["rm", "-f", id]);
  });
});

describe("stop, kill, wait, restart, inspect", () => {
  test("stop sends SIGTERM, which a handler can act on", () => {
    const id = detach("trap 'exit 3' TERM; while :; do sleep 0.1; done");
    ok(["stop", id]);
    expect(status(id)).toMatchObject({ Status: "exited", ExitCode: 3 });
    expect(ok(["wait", id])).toBe("3");
    ok(["rm", id]);
  });

  test("stop waits the grace period, then kills", () => {
    // a PID 1 without a handler for SIGTERM ignores it, as in Docker
    const id = detach("sleep 100");
    const t0 = Date.now();
    ok(["stop", "-t", "1", id]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1000);
    expect(status(id)).toMatchObject({ Status: "exited", ExitCode: 137 });
    ok(["rm", id]);
  });

  test("kill -s sends a signal; wait prints the exit code", () => {
    const id = detach("trap 'exit 10' USR1; while :; do sleep 0.1; done");
    ok(["kill", "-s", "USR1", id]);
    expect(ok(["wait", id])).toBe("10");
    const r = b(["kill", id]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("is not running");
    ok(["rm", id]);
  });

  test("restart starts the same container again: its files and its log stay", async () => {
    const w = workdir();
    const tar = tarOf(rootfsDir(w), join(w, "base.tar"));
    ok(["import", tar, "--name", "base"]);
    const id = ok(["run", "-d", "--name", "again", "base", "sh", "-c", "echo run >> /runs; cat /runs | wc -l; sleep 100"]);
    await until("the first line", () => b(["logs", "again"]).stdout === "1\n");
    expect(ok(["restart", "-t", "0", "again"])).toBe("again");
    await until("the second run", () => b(["logs", "again"]).stdout === "1\n2\n");
    const st = status("again");
    expect(st.Status).toBe("running");
    const info = JSON.parse(ok(["inspect", "--json", "again"]))[0];
    // the image as given, as Docker shows it
    expect(info).toMatchObject({ Id: id, Name: "again", Image: "base", Args: ["sh", "-c", expect.any(String)], Detached: true });
    expect(info.State.StartedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    ok(["rm", "-f", "again"]);
    ok(["rmi", "base"]);
  });

  test("inspect shows volumes as mounts, and times", async () => {
    const w = workdir();
    const id = detach("exit 4", ["-v", `${w}:/data:ro`]);
    await until("the exit", () => status(id).Status === "exited");
    const info = JSON.parse(ok(["inspect", "--json", id]))[0];
    expect(info.State).toMatchObject({ Status: "exited", Running: false, ExitCode: 4, OOMKilled: false });
    expect(Date.parse(info.State.FinishedAt)).toBeGreaterThanOrEqual(Date.parse(info.State.StartedAt));
    expect(info.Mounts).toEqual([{ Type: "bind", Source: w, Destination: "/data", RW: false }]);
    ok(["rm", id]);
  });
});

describe("a state that never lies", () => {
  test("killing the supervisor kills the container, and ps shows it exited", async () => {
    const id = detach("sleep 100");
    const { stage, pid } = pidsOf(id);
    process.kill(stage, "SIGKILL");
    await until("the container to die with it", () => !running(pid));
    expect(status(id)).toMatchObject({ Status: "exited", ExitCode: 137 });
    ok(["rm", id]);
    await nothingLeft([stage, pid]);
  });

  test("kill -9 of the CLI at any point leaves state that ps reads and rm -f cleans", async () => {
    const pids: number[] = [];
    for (let i = 0; i < 12; i++) {
      const p = Bun.spawn(asUser([h.bin, "run", "-d", "--name", `k${i}`, u.rootfs, "sleep", "100"], { env }), { stdout: "ignore", stderr: "ignore" });
      await Bun.sleep(i * 8);
      p.kill("SIGKILL");
      await p.exited;
    }
    const ps = JSON.parse(ok(["ps", "-a", "--json"])) as { id: string; state: string }[];
    for (const c of ps) expect(["created", "running", "exited"]).toContain(c.state);
    for (const c of ps) if (existsSync(join(state, "containers", c.id, "pid"))) pids.push(...Object.values(pidsOf(c.id)));
    if (ps.length) ok(["rm", "-f", ...ps.map((c) => c.id)]);
    await nothingLeft(pids);
    // and no container started after `ps` looked (a stage still starting when its directory went) runs on
    await Bun.sleep(1000);
    const sleeping = () => Bun.spawnSync(["ps", "-u", String(u.uid), "-o", "stat=,args="]).stdout.toString().split("\n").filter((l) => /^[^Z]\S*\s+sleep 100$/.test(l.trim()));
    await until("no container of this test to run", () => sleeping().length === 0);
  });

  test("the container survives the terminal it was started from", async () => {
    // setsid: a shell of its own session, as a login shell is; closing it sends SIGHUP to its session
    const p = Bun.spawn(asUser(["setsid", "-w", "sh", "-c", `${h.bin} run -d --name hup ${u.rootfs} sleep 100; kill -HUP 0`], { env }), { stdout: "pipe", stderr: "pipe" });
    await p.exited;
    expect(status("hup").Status).toBe("running");
    ok(["rm", "-f", "hup"]);
  });

  test("50 concurrent run -d with distinct names all run, and rm -f of all leaves nothing", async () => {
    const procs = Array.from({ length: 50 }, (_, i) =>
      Bun.spawn(asUser([h.bin, "run", "-d", "--name", `many${i}`, u.rootfs, "sleep", "100"], { env }), { stdout: "pipe", stderr: "pipe" }),
    );
    const codes = await Promise.all(procs.map((p) => p.exited));
    expect(codes).toEqual(Array(50).fill(0));
    const ps = JSON.parse(ok(["ps", "--json"])) as { id: string; name: string; state: string }[];
    expect(ps.filter((c) => c.name.startsWith("many") && c.state === "running").length).toBe(50);
    const pids = ps.flatMap((c) => Object.values(pidsOf(c.id)));
    ok(["rm", "-f", ...ps.map((c) => c.name)], { timeout: 120000 });
    await nothingLeft(pids);
  }, 180000);
});

describe("limits on a host without a delegated cgroup v2 (this one: hybrid)", () => {
  const delegated = readFileSync("/proc/self/mountinfo", "utf8").split("\n").some((l) => l.split(" ")[4] === "/sys/fs/cgroup" && l.includes(" - cgroup2 "));
  test.skipIf(delegated)("a limit fails with why and what to do; a run without limits works; the cgroup verbs say why they cannot", () => {
    for (const flag of [["--memory", "64m"], ["--cpus", "0.5"], ["--pids-limit", "10"], ["--cpu-shares", "512"], ["--io-weight", "100"]]) {
      const r = b(["run", "--network", "none", ...flag, u.rootfs, "true"]);
      expect(r.code).toBe(125);
      expect(r.stderr).toMatch(/^bunker: resource limits need a delegated cgroup v2 subtree, and this host has no pure cgroup v2 hierarchy at \/sys\/fs\/cgroup .*: run bunker in a systemd user session on a cgroup v2 host/);
    }
    expect(b(["run", "--network", "none", u.rootfs, "true"]).code).toBe(0);
    const id = detach("sleep 100", ["--network", "none"]);
    for (const verb of [["stats", "--no-stream"], ["pause"], ["update", "--memory", "64m"]]) {
      const r = b([...verb, id]);
      expect(r.code).toBe(125);
      expect(r.stderr).toContain("has no cgroup of its own: this host delegates no cgroup v2 subtree to you");
    }
    ok(["rm", "-f", id]);
  });

  test.skipIf(delegated)("limits a config.json (or an image from another host) carries are dropped with a notice, and it runs", () => {
    const bundle = mkdtempSync(join(h.dir, "limited-"));
    chmodSync(bundle, 0o777);
    expect(b(["spec", "--rootless", "--bundle", bundle]).code).toBe(0);
    const path = join(bundle, "config.json");
    const config = JSON.parse(readFileSync(path, "utf8"));
    Object.assign(config.process, { terminal: false, args: ["/bin/sh", "-c", "echo ran"] });
    config.root.path = u.rootfs;
    config.linux.resources = { memory: { limit: 67108864 }, pids: { limit: 50 } };
    writeFileSync(path, JSON.stringify(config));
    const r = b(["run", bundle]);
    expect([r.code, r.stdout]).toEqual([0, "ran\n"]);
    expect(r.stderr).toMatch(/^bunker: warning: the container's resource limits \(memory\.max 67108864, pids\.max 50\) are not applied: this host has no pure cgroup v2 hierarchy at \/sys\/fs\/cgroup .*\n$/);
    // a limit asked for on the command line must hold: the same bundle with one is refused
    const asked = b(["run", "--memory", "32m", bundle]);
    expect(asked.code).toBe(125);
    expect(asked.stderr).toStartWith("bunker: resource limits need a delegated cgroup v2 subtree");
  });

  test("bad limit values are refused before anything starts", () => {
    const cases: [string[], string][] = [
      [["--memory", "lots"], 'invalid --memory "lots": use a size like 512m or 1g'],
      [["--cpus", "-1"], 'invalid --cpus "-1": give a number of CPUs like 0.5 or 2'],
      [["--pids-limit", "x"], 'invalid --pids-limit "x": give a whole number from -1 to 4194304'],
      [["--memory-swap", "1g"], "--memory-swap needs --memory, as in Docker"],
      [["--memory", "1g", "--memory-swap", "512m"], "--memory-swap is memory plus swap: it cannot be less than --memory"],
    ];
    for (const [flags, message] of cases) {
      const r = b(["run", "--network", "none", ...flags, u.rootfs, "true"]);
      expect([r.code, r.stderr.trim()]).toEqual([125, `bunker: ${message}`]);
    }
  });
});

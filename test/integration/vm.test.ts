// Another host: a bundle made here is imported and run inside cgroup2-vm, a
// KVM/TCG guest with another kernel (6.1), pure cgroup v2, and a user 1000
// with subordinate ids. Slow (a VM boot under emulation): about a minute.
import { expect, test } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { asRoot, setup } from "./harness.ts";
import { freshStore, inStore, rootfsDir, tarOf, workdir } from "./store.ts";

const h = setup();
const ROOT = new URL("../..", import.meta.url).pathname;
const VM = [join(ROOT, "../shared/vm/cgroup2-vm"), "/work/shared/vm/cgroup2-vm"].find((p) => existsSync(p));

test.skipIf(!VM || !asRoot)("a bundle made here imports and runs on another kernel (cgroup2-vm)", () => {
  // host A: a container that changes its image, exported
  const a = freshStore();
  const w = workdir();
  expect(inStore(a.env, ["import", tarOf(rootfsDir(w), join(w, "base.tar")), "--name", "base"]).code).toBe(0);
  const made = inStore(a.env, ["run", "--name", "moved", "-h", "moved", "-e", "FROM=host-a", "base", "/bin/sh", "-c", "echo portable > /srv-note && chown 33:33 /srv-note"]);
  expect(made.code).toBe(0);
  const share = mkdtempSync(join(h.dir, "vm-"));
  chmodSync(share, 0o777); // the test user writes the bundle here
  expect(inStore(a.env, ["export", "moved", "-o", join(share, "moved.bundle")]).code).toBe(0);
  Bun.spawnSync(["cp", h.bin, join(share, "bunker")]);
  chmodSync(join(share, "moved.bundle"), 0o644);

  // host B: the guest, as its uid 1000, with an empty store
  const script = [
    "export XDG_DATA_HOME=$(mktemp -d)",
    "/opt/b/bunker import /opt/b/moved.bundle >/dev/null",
    "/opt/b/bunker run --rm moved /bin/sh -c 'uname -r; hostname; echo $FROM; cat /srv-note; stat -c %u:%g /srv-note; cat /proc/self/uid_map | wc -l'",
  ].join(" && ");
  const r = Bun.spawnSync([VM!, "--timeout", "600", "--share-ro", `${share}:/opt/b`, "--", "sh", "-c", script], { stdout: "pipe", stderr: "pipe" });
  const out = r.stdout.toString().trim().split("\n");
  expect(r.exitCode, r.stderr.toString().slice(-2000)).toBe(0);
  expect(out[0]).not.toBe(Bun.spawnSync(["uname", "-r"]).stdout.toString().trim()); // another kernel
  expect(out.slice(1)).toEqual(["moved", "host-a", "portable", "33:33", "2"]);
}, 900_000);

test.skipIf(!VM || !asRoot)("cgroup v2 limits in a delegated subtree (cgroup2-vm): OOM, pids, CPU quota, stats, exec, pause, update, removal, and a bundle that carries them both ways", () => {
  const share = mkdtempSync(join(h.dir, "vm-cg-"));
  chmodSync(share, 0o755);
  Bun.spawnSync(["cp", "-a", h.bin, join(ROOT, "dist/rootfs"), join(ROOT, "test/integration/cgroup-vm.sh"), share]);
  tarOf(join(share, "rootfs"), join(share, "rootfs.tar"));
  const out = mkdtempSync(join(h.dir, "vm-out-"));
  chmodSync(out, 0o777); // the guest's user writes a bundle here
  const r = Bun.spawnSync([VM!, "--timeout", "600", "--share-ro", `${share}:/opt/b`, "--share", `${out}:/opt/out`, "--", "sh", "/opt/b/cgroup-vm.sh", "/opt/b", "/opt/out"], { stdout: "pipe", stderr: "pipe" });
  const text = r.stdout.toString();
  expect(r.exitCode, r.stderr.toString().slice(-2000)).toBe(0);
  const got = (key: string) => text.match(new RegExp(`^${key} (.*)$`, "m"))?.[1];
  // a memory hog is OOM-killed, exits 137, and inspect says so
  expect([got("oom-exit"), got("oom-wait"), got("oom-inspect")]).toEqual(["137", "137", "1"]);
  // a fork bomb stops at the limit; the guest stays healthy
  expect(Number(got("pids-current"))).toBeLessThanOrEqual(20);
  expect(Number(got("pids-max-events"))).toBeGreaterThan(0);
  expect(got("healthy")).toBe("ok");
  // a quota of 0.25 CPU throttles, and usage stays near it
  expect(Number(got("cpu-throttled"))).toBeGreaterThan(0);
  const share_ = Number(got("cpu-usage-usec")) / Number(got("cpu-elapsed-usec"));
  expect(share_).toBeGreaterThan(0.1);
  expect(share_).toBeLessThan(0.35);
  // stats are non-zero and plausible
  const [s] = JSON.parse(got("stats")!);
  expect(s.cpuPercent).toBeGreaterThan(5);
  expect(s.cpuPercent).toBeLessThan(40);
  expect(s.memoryBytes).toBeGreaterThan(0);
  expect(s.pids).toBe(1);
  // exec joins the container's cgroup, which is the root of its cgroup namespace
  expect([got("exec-cgroup"), got("pid1-cgroup")]).toEqual(["0::/", "0::/"]);
  expect(got("cgroup-after-rm")).toBe("gone");
  // pause stops the counter, unpause resumes it; update takes effect
  const [a, b] = got("paused-counter")!.split(" ").map(Number);
  expect(a).toBeGreaterThan(0);
  expect(b).toBe(a!);
  expect(got("paused-ps")).toBe("1");
  const [b2, c] = got("resumed-counter")!.split(" ").map(Number);
  expect(c!).toBeGreaterThan(b2!);
  expect(got("updated")).toBe("67108864 50");
  // a bundle carries its container's limits to another store, which applies them
  expect(got("bundle-limits")).toBe("50331648 30");
  expect(text).toMatch(/^done$/m);
  // and back on this host, which cannot apply them, it runs without them and says so once
  chmodSync(join(out, "limited.bundle"), 0o644); // an export is its owner's alone
  const here = freshStore();
  expect(inStore(here.env, ["import", join(out, "limited.bundle")]).code).toBe(0);
  const ran = inStore(here.env, ["run", "--rm", "--network", "none", "limited", "echo", "ran"]);
  expect([ran.code, ran.stdout]).toEqual([0, "ran\n"]);
  const hybrid = !readFileSync("/proc/self/mountinfo", "utf8").split("\n").some((l) => l.split(" ")[4] === "/sys/fs/cgroup" && l.includes(" - cgroup2 "));
  if (hybrid) expect(ran.stderr).toMatch(/^bunker: warning: the container's resource limits \(memory\.max 50331648, pids\.max 30\) are not applied: /);
}, 900_000);

test.skipIf(!VM || !asRoot || !existsSync("/usr/lib/systemd/systemd"))("cgroups from a systemd user manager (cgroup2-vm with the host's systemd --user): transient scopes", () => {
  const share = mkdtempSync(join(h.dir, "vm-sd-"));
  chmodSync(share, 0o755);
  Bun.spawnSync(["cp", "-a", h.bin, join(ROOT, "dist/rootfs"), join(ROOT, "test/integration/cgroup-vm-systemd.sh"), share]);
  const r = Bun.spawnSync([VM!, "--root", "--host-usr", "--timeout", "600", "--share-ro", `${share}:/opt/b`, "--", "sh", "/opt/b/cgroup-vm-systemd.sh", "/opt/b"], { stdout: "pipe", stderr: "pipe" });
  const out = r.stdout.toString();
  expect(r.exitCode, r.stderr.toString().slice(-2000)).toBe(0);
  const got = (key: string) => out.match(new RegExp(`^${key} (.*)$`, "m"))?.[1]?.trim();
  expect(got("manager")).toBe("up");
  // a foreground run gets a scope of its own, limited, and the scope goes with it
  expect(got("fg")).toBe("67108864 0::/");
  expect(got("fg-scopes-left")).toBe("0");
  // the container in SCOPE/container, the stage in SCOPE/supervisor, the scope in the manager's app.slice
  expect(got("cgroup")).toMatch(/^\/user\.slice\/user-1000\.slice\/user@1000\.service\/app\.slice\/bunker-[0-9a-f]{12}-[0-9a-f]{8}\.scope\/container$/);
  expect([got("pids-max"), got("container-procs"), got("supervisor-procs")]).toEqual(["30", "1", "1"]);
  // exec, pause, stats and update work on it; rm leaves no scope
  expect(got("exec-cgroup")).toBe("0::/");
  expect(got("frozen")).toBe("1 1");
  expect(JSON.parse(got("stats")!)[0].pids).toBe(1);
  expect(got("updated")).toBe("40");
  expect(got("restarted")).toBe("new-scope gone 40"); // update's limits kept, as Docker keeps them
  expect(got("scope-after-rm")).toBe("gone");
  // OOM: 137, and inspect says so though the scope has gone with the stage
  expect([got("oom-wait"), got("oom-scope"), got("oom-inspect")]).toEqual(["137", "gone", "1"]);
  // BUNKER_CGROUP_MANAGER=cgroupfs: bunker/ID in the delegated cgroup
  expect(got("cgroupfs")).toBe("bunker/ID");
  // asked for systemd where none answers: a limit fails (125) saying why; a plain run works
  expect(got("no-manager")).toMatch(/^125 bunker: resource limits need a delegated cgroup v2 subtree, and no systemd user manager socket/);
  expect(got("no-manager-plain")).toBe("ok");
  expect(got("units-left")).toBe("0");
  // the manager gone, its socket left: a notice, and the delegated cgroup instead
  expect(got("fallback")).toBe("bunker/ID 1");
}, 900_000);

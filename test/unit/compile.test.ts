import { expect, test } from "bun:test";
import { CLONE, compile, type CompileContext, compileExec, FORWARDED_SIGNALS, makedev } from "../../src/linux/compile.ts";
import { chooseMaps } from "../../src/linux/idmap.ts";
import { MS } from "../../src/linux/mountopts.ts";
import { Op, OpFlag, type PlanOp, Supervise } from "../../src/linux/plan.ts";
import { buildSpec, type RunFlags } from "../../src/spec/build.ts";
import type { RunOptions, Spec } from "../../src/spec/types.ts";

const who = { uid: 1000, gid: 1000, user: "alice" };
const ranges = { uids: [{ start: 100000, count: 65536 }], gids: [{ start: 100000, count: 65536 }] };
const helpers = { newuidmap: "/usr/bin/newuidmap", newgidmap: "/usr/bin/newgidmap" };

function spec(f: Partial<RunFlags> = {}, command = ["sh"]): { spec: Spec; opts: RunOptions } {
  return buildSpec({
    flags: { env: [], envFile: [], volume: [], tmpfs: [], readOnly: false, init: false, tty: false, interactive: false, capAdd: [], capDrop: [], ...f },
    command,
    rootfs: "/rootfs",
    id: "abcdefabcdefabcdef",
    maps: (mode) => chooseMaps(mode, who, () => ranges, (n) => helpers[n]),
    hostEnv: {},
    readFile: () => "",
  });
}

const ctx = (more: Partial<CompileContext> = {}): CompileContext => ({
  uid: 1000,
  gid: 1000,
  helper: (n) => helpers[n],
  etcFiles: [{ destination: "/etc/hosts", source: "/state/hosts" }],
  cleanup: ["/state/hosts", "/state/"],
  kind: (p) => (p.endsWith(".txt") ? "file" : p.startsWith("/missing") ? undefined : "dir"),
  ...more,
});

function plan(f: Partial<RunFlags> = {}, c: Partial<CompileContext> = {}, command?: string[]): PlanOp[] {
  const s = spec(f, command);
  return compile(s.spec, s.opts, ctx(c)).ops;
}
const codes = (ops: PlanOp[]) => ops.map((o) => o.code);
const find = (ops: PlanOp[], code: number, pred: (o: PlanOp) => boolean = () => true) => ops.filter((o) => o.code === code && pred(o));
const index = (ops: PlanOp[], code: number, pred?: (o: PlanOp) => boolean) => ops.indexOf(find(ops, code, pred)[0]!);

test("the stage clones every namespace, maps ids with newuidmap/newgidmap, then releases the child", () => {
  const ops = plan();
  expect(ops[0]!.code).toBe(Op.CLONE);
  expect(Number(ops[0]!.ints[0])).toBe(Object.values(CLONE).reduce((a, b) => a | b, 0));
  expect(ops[1]!.strs).toEqual(["/usr/bin/newuidmap", "{pid}", "0", "1000", "1", "1", "100000", "65536"]);
  expect(ops[2]!.strs[0]).toBe("/usr/bin/newgidmap");
  expect(ops[3]!.code).toBe(Op.RELEASE);
  expect(codes(ops).slice(-2)).toEqual([Op.SUPERVISE, Op.CLEANUP]);
  expect(ops.at(-1)!.strs).toEqual(["/state/hosts", "/state/"]);
});

test("a one-id map is written directly, after setgroups deny, and no SETGROUPS op follows", () => {
  const ops = plan({ userns: "single" });
  expect(find(ops, Op.WRITE).map((o) => o.strs)).toEqual([
    ["/proc/{pid}/setgroups", "deny"],
    ["/proc/{pid}/uid_map", "0 1000 1\n"],
    ["/proc/{pid}/gid_map", "0 1000 1\n"],
  ]);
  expect(find(ops, Op.SPAWN)).toEqual([]);
  expect(find(ops, Op.SETGROUPS)).toEqual([]);
});

test("ranges without newuidmap are refused with the package to install", () => {
  const s = spec();
  expect(() => compile(s.spec, s.opts, ctx({ helper: () => undefined }))).toThrow("newuidmap is needed for this id map but was not found: install the uidmap package");
});

test("the whole file system is set up before pivot_root, on the host's /proc; the process after", () => {
  const ops = plan({ readOnly: true, workdir: "/srv" });
  const pivot = index(ops, Op.PIVOT);
  const root = index(ops, Op.ROOT);
  expect(root).toBeLessThan(pivot);
  const before = ops.slice(root, pivot);
  const mountTargets = find(before, Op.MOUNT).map((o) => o.strs[1]);
  expect(mountTargets.slice(0, 8)).toEqual(["/proc", "/dev", "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"]);
  expect(mountTargets).toContain("/etc/hosts");
  expect(find(before, Op.MASK).map((o) => o.strs[0])).toContain("/proc/kcore");
  const ro = find(before, Op.MOUNT, (o) => o.strs[1] === "/proc/sys")[0]!;
  expect(Number(ro.ints[0]) & (MS.BIND | MS.RDONLY)).toBe(MS.BIND | MS.RDONLY);
  expect(ro.flags & OpFlag.SRC_IN_ROOT).toBeTruthy();
  // the working directory is made before the root turns read-only (Docker makes a missing one)
  expect(index(ops, Op.MKDIR)).toBeLessThan(index(ops, Op.REMOUNT));
  expect(index(ops, Op.REMOUNT)).toBeLessThan(pivot);
  for (const code of [Op.SETSID, Op.CAPBSET, Op.SETUID, Op.CAPSET, Op.CHDIR, Op.EXEC]) expect(index(ops, code)).toBeGreaterThan(pivot);
});

test("devices are bound only if they are the real character devices", () => {
  const ops = plan();
  const nul = find(ops, Op.MOUNT, (o) => o.strs[1] === "/dev/null")[0]!;
  expect(nul.ints[2]).toBe(makedev(1, 3));
  expect(find(ops, Op.MOUNT, (o) => o.strs[1] === "/dev/tty")[0]!.ints[2]).toBe(makedev(5, 0));
  expect(makedev(1, 3)).toBe(0x103n);
  // glibc's layout: minor's high bits go above the major's low 12 bits
  expect(makedev(259, 300)).toBe(0x11032cn);
});

test("devpts drops gid=5 when gid 5 is not mapped", () => {
  const data = (ops: PlanOp[]) => find(ops, Op.MOUNT, (o) => o.strs[2] === "devpts")[0]!.strs[3];
  expect(data(plan())).toContain("gid=5");
  expect(data(plan({ userns: "single" }))).not.toContain("gid=");
});

test("without a network namespace sysfs becomes a recursive read-only bind of the host's", () => {
  const ops = plan({ network: "host" });
  const sys = find(ops, Op.MOUNT, (o) => o.strs[1] === "/sys")[0]!;
  expect(sys.strs[0]).toBe("/sys");
  expect(sys.flags & OpFlag.RECURSIVE_RO).toBeTruthy();
  expect(find(ops, Op.LOOPBACK)).toEqual([]);
  expect(find(plan(), Op.LOOPBACK)).toHaveLength(1);
});

test("volumes: the target kind follows the source; a missing source is refused", () => {
  const ops = plan({ volume: ["/src/dir:/data:ro", "/src/f.txt:/etc/f.txt"] });
  const dir = find(ops, Op.MOUNT, (o) => o.strs[1] === "/data");
  expect(dir[0]!.ints[1]).toBe(1n); // create a directory
  expect(Number(dir[0]!.ints[0]) & (MS.BIND | MS.REC | MS.RDONLY)).toBe(MS.BIND | MS.REC | MS.RDONLY);
  expect(dir[1]!.ints[0]).toBe(BigInt(MS.PRIVATE | MS.REC)); // then rprivate
  expect(find(ops, Op.MOUNT, (o) => o.strs[1] === "/etc/f.txt")[0]!.ints[1]).toBe(2n); // a file
  expect(() => plan({ volume: ["/missing:/x"] })).toThrow("bind mount source /missing does not exist");
});

test("terminal, stdin and init choices", () => {
  const plain = plan();
  expect(codes(plain)).toContain(Op.SETSID);
  expect(codes(plain)).toContain(Op.STDIN_NULL);
  expect(find(plain, Op.SUPERVISE)[0]!.ints).toEqual([0n, FORWARDED_SIGNALS]);
  expect(FORWARDED_SIGNALS).toBe(0x8004a07n); // bits 0 (HUP) 1 (INT) 2 (QUIT) 9 (USR1) 11 (USR2) 14 (TERM) 27 (WINCH)
  const tty = plan({ tty: true, interactive: true, init: true });
  expect(codes(tty)).toContain(Op.CONSOLE);
  expect(codes(tty)).not.toContain(Op.STDIN_NULL);
  expect(find(tty, Op.SUPERVISE)[0]!.ints[0]).toBe(BigInt(Supervise.TTY | Supervise.STDIN));
  expect(find(tty, Op.EXEC)[0]!.flags).toBe(OpFlag.INIT);
  expect(codes(plan({ interactive: true }))).not.toContain(Op.STDIN_NULL);
});

test("the process: caps before the user switch, chdir after, exec last of the child ops", () => {
  const ops = plan({ user: "1000:1000", workdir: "/srv", env: ["A=1"] }, {}, ["app", "--flag"]);
  const order = [Op.CAPBSET, Op.SETGROUPS, Op.SETGID, Op.KEEPCAPS, Op.SETUID, Op.CAPSET, Op.CHDIR, Op.NO_NEW_PRIVS, Op.CLOSE_FDS, Op.EXEC].map((c) => index(ops, c));
  expect([...order].sort((a, b) => a - b)).toEqual(order);
  const exec = find(ops, Op.EXEC)[0]!;
  expect(exec.ints).toEqual([2n, BigInt(exec.strs.length - 3), 127n, 126n]);
  expect(exec.strs.slice(0, 3)).toEqual(["/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "app", "--flag"]);
  expect(exec.strs).toContain("A=1");
  expect(exec.desc).toBe('exec "app"');
  expect(find(ops, Op.CAPSET)[0]!.ints).toEqual([0n, 0n, 0n, 0n]);
  expect(find(ops, Op.CAPBSET)[0]!.ints).toEqual([0xa80425fbn]);
});

test("a user-namespace hint is attached to the steps it explains", () => {
  const ops = plan({}, { hint: "AppArmor restricts it" });
  expect(ops[0]!.desc.split("\t")).toEqual(["create namespaces (pid, ipc, uts, mount, user, cgroup, network)", "AppArmor restricts it"]);
});

test("ambient capabilities are raised only when permitted and inheritable, as runc does", () => {
  const s = spec();
  s.spec.process!.capabilities = { bounding: ["CAP_KILL", "CAP_CHOWN"], permitted: ["CAP_KILL", "CAP_CHOWN"], inheritable: ["CAP_CHOWN"], ambient: ["CAP_KILL", "CAP_CHOWN"] };
  const capset = compile(s.spec, s.opts, ctx()).ops.find((o) => o.code === Op.CAPSET)!;
  expect(capset.ints).toEqual([0n, (1n << 5n) | 1n, 1n, 1n]);
});

test("the parent-death signal is set again after the user switch, which clears it", () => {
  const ops = plan({ user: "1000:1000" });
  const deaths = find(ops, Op.PDEATHSIG).map((o) => ops.indexOf(o));
  expect(deaths).toHaveLength(2);
  expect(deaths[1]).toBeGreaterThan(index(ops, Op.SETUID));
  expect(find(plan(), Op.KEEPCAPS)).toEqual([]); // root needs no keepcaps
});

test("a bundle without PATH still finds its command with Docker's default", () => {
  const s = spec();
  s.spec.process!.env = ["A=1"];
  const exec = compile(s.spec, s.opts, ctx()).ops.find((o) => o.code === Op.EXEC)!;
  expect(exec.strs[0]).toBe("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
});

test("detached: the stage leaves the session before the clone, records the pids after the release, and logs", () => {
  const ops = plan({ interactive: true }, { detach: { log: "/state/log", logCap: 4096 }, record: { path: "/state/pid", lock: "/state/lock" }, after: { status: ["/state/exit"] } });
  expect(ops[0]).toMatchObject({ code: Op.DETACH, strs: ["/state/log"], ints: [4096n, 1n] });
  expect(ops[1]!.code).toBe(Op.CLONE);
  const release = index(ops, Op.RELEASE);
  expect(ops[release + 1]).toMatchObject({ code: Op.RECORD, strs: ["/state/pid", "/state/lock"] });
  expect(index(ops, Op.STATUS)).toBeGreaterThan(index(ops, Op.SUPERVISE));
});

test("exec joins the container's namespaces, creates none, and runs the same process steps", () => {
  const s = spec({}, ["sleep", "100"]);
  const proc = { ...s.spec.process!, args: ["ps"], terminal: true };
  const ops = compileExec(s.spec, proc, { pid: 42, starttime: "12345" }, { interactive: true, detach: false }, { uid: 1000, gid: 1000 }).ops;
  const joined = Number(ops[0]!.ints[1]);
  expect([ops[0]!.code, ops[0]!.ints[0], ops[0]!.strs]).toEqual([Op.JOIN, 42n, ["12345"]]);
  for (const f of [CLONE.NEWUSER, CLONE.NEWNS, CLONE.NEWPID, CLONE.NEWIPC, CLONE.NEWUTS, CLONE.NEWNET]) expect(joined & f).toBe(f);
  expect(ops[1]).toMatchObject({ code: Op.CLONE, ints: [0n] });
  expect(codes(ops)).not.toContain(Op.MOUNT);
  expect(codes(ops)).not.toContain(Op.PIVOT);
  expect(find(ops, Op.CONSOLE)[0]!.strs).toEqual([""]);
  expect(index(ops, Op.DUMPABLE)).toBeLessThan(index(ops, Op.CONSOLE));
  expect(codes(ops).slice(-2)).toEqual([Op.EXEC, Op.SUPERVISE]);
  expect(find(ops, Op.SUPERVISE)[0]!.ints[0]).toBe(BigInt(Supervise.TTY | Supervise.STDIN));
  // with the host's network, there is no network namespace to join
  const host = spec({ network: "host" });
  const hostOps = compileExec(host.spec, host.spec.process!, { pid: 42, starttime: "1" }, { interactive: false, detach: true }, { uid: 1000, gid: 1000 }).ops;
  expect(hostOps[0]!.code).toBe(Op.DETACH);
  expect(Number(hostOps[1]!.ints[1]) & CLONE.NEWNET).toBe(0);
});

test("an image's layers: the kernel's overlay mounted by the child, or fuse-overlayfs started by the stage outside the container's pid namespace", () => {
  const overlay = { lower: ["/l/top", "/l/base"], upper: "/c/upper", work: "/c/work" };
  const kernel = plan({}, { overlay });
  expect(find(kernel, Op.MOUNT, (o) => o.strs[2] === "overlay")[0]!.strs).toEqual(["overlay", "/rootfs", "overlay", "lowerdir=/l/top:/l/base,upperdir=/c/upper,workdir=/c/work,userxattr"]);
  expect(find(kernel, Op.HELPER)).toEqual([]);

  const fuse = plan({}, { overlay: { ...overlay, fuse: "/usr/bin/fuse-overlayfs" } });
  expect(find(fuse, Op.MOUNT, (o) => o.strs[2] === "overlay")).toEqual([]);
  const [helper] = find(fuse, Op.HELPER);
  // in the child's user and mount namespaces, ready once /rootfs is a mount point there; before the child runs
  expect(helper!.flags).toBe(OpFlag.JOIN_NS | OpFlag.READY_MOUNT);
  expect(helper!.strs).toEqual(["/rootfs", "/usr/bin/fuse-overlayfs", "-f", "-o", "lowerdir=/l/top:/l/base,upperdir=/c/upper,workdir=/c/work", "/rootfs"]);
  expect(index(fuse, Op.HELPER)).toBeLessThan(index(fuse, Op.RELEASE));
  // the container leaves the mount namespace it shares with fuse-overlayfs before pivot_root moves roots in it
  const unshare = index(fuse, Op.UNSHARE, (o) => Number(o.ints[0]) === CLONE.NEWNS);
  expect(unshare).toBeGreaterThan(index(fuse, Op.RELEASE));
  expect(unshare).toBeLessThan(index(fuse, Op.PIVOT));
});

test("a network helper starts once the child is released; the child sets up its root meanwhile, waits for it, and only then turns non-dumpable", () => {
  const pasta = { desc: "start pasta", argv: ["/usr/bin/pasta", "{pid}"], ready: "/state/pasta.pid", timeoutMs: 10_000 };
  const ops = plan({}, { helpers: [pasta] });
  const releases = ops.flatMap((o, i) => (o.code === Op.RELEASE ? [i] : []));
  expect(releases).toHaveLength(2);
  expect(index(ops, Op.HELPER)).toBeGreaterThan(releases[0]!);
  expect(index(ops, Op.HELPER)).toBeLessThan(releases[1]!);
  // the child's side: its mounts, then the wait, then non-dumpable, then the process
  expect(index(ops, Op.PIVOT)).toBeLessThan(index(ops, Op.AWAIT));
  expect(index(ops, Op.AWAIT)).toBeLessThan(index(ops, Op.DUMPABLE));
  expect(index(ops, Op.DUMPABLE)).toBeLessThan(index(ops, Op.SETUID));
  // without one, one release and no wait; non-dumpable all the same before the process
  const none = plan({ network: "none" });
  expect(find(none, Op.RELEASE)).toHaveLength(1);
  expect(codes(none)).not.toContain(Op.AWAIT);
  expect(index(none, Op.DUMPABLE)).toBeLessThan(index(none, Op.SETUID));
});

test("--rm removes the files from the container's own user namespace, rejoined, with no second id mapping", () => {
  const ops = plan({}, { after: { status: [], remove: ["/store/containers/abc"] } });
  const after = ops.slice(index(ops, Op.SUPERVISE) + 1);
  expect(codes(after)).toEqual([Op.REJOIN, Op.CLONE, Op.RELEASE, Op.RMTREE, Op.SUPERVISE, Op.CLEANUP]);
  expect(after[1]!.ints).toEqual([0n]);
  expect(find(ops, Op.SPAWN)).toHaveLength(2); // newuidmap and newgidmap, once
  expect(find(ops, Op.RMTREE)[0]!.strs).toEqual(["/store/containers/abc"]);
});

import { expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { cgroupFiles, cgroupManager, findDelegated, parseBytes, resourcesFromFlags } from "../../src/runtime/cgroup.ts";
import { ioBytes } from "../../src/cli/resources.ts";

test("Docker's limit flags as OCI resources, and those as cgroup v2 files", () => {
  const r = resourcesFromFlags({ memory: "512m", memorySwap: "1g", memoryReservation: "256m", cpus: "1.5", cpuShares: "1024", cpusetCpus: "0-1", pidsLimit: "100", ioWeight: "200" })!;
  expect(r).toEqual({
    memory: { limit: 512 << 20, reservation: 256 << 20, swap: 1 << 30 },
    cpu: { period: 100000, quota: 150000, shares: 1024, cpus: "0-1" },
    pids: { limit: 100 },
    blockIO: { weight: 200 },
  });
  const { files, controllers } = cgroupFiles(r);
  expect(Object.fromEntries(files)).toEqual({
    "memory.max": String(512 << 20),
    "memory.low": String(256 << 20),
    "memory.swap.max": String(512 << 20),
    "cpu.max": "150000 100000",
    "cpu.weight": "39",
    "cpuset.cpus": "0-1",
    "pids.max": "100",
    "io.weight": "default 200",
  });
  expect(controllers.sort()).toEqual(["cpu", "cpuset", "io", "memory", "pids"]);
  expect(resourcesFromFlags({})).toBeUndefined();
  expect(cgroupFiles({ pids: { limit: -1 }, memory: { limit: 1 << 20, swap: -1 } }).files).toEqual([
    ["memory.max", "1048576"],
    ["memory.swap.max", "max"],
    ["pids.max", "max"],
  ]);
});

test("sizes in Docker's units", () => {
  expect(parseBytes("1024", "--memory")).toBe(1024);
  expect(parseBytes("64k", "--memory")).toBe(65536);
  expect(parseBytes("1.5g", "--memory")).toBe(1.5 * 2 ** 30);
  expect(parseBytes("2MB", "--memory")).toBe(2 << 20);
  expect(() => parseBytes("much", "--memory")).toThrow('invalid --memory "much"');
});

test("the delegated cgroup: pure v2 only, the nearest ancestor we own", () => {
  const hybrid = "25 1 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro\n";
  const pure = "25 1 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
  expect("why" in findDelegated(1000, hybrid, "0::/")).toBe(true);
  expect((findDelegated(1000, hybrid, "0::/") as { why: string }).why).toContain("it mounts tmpfs there");
  expect((findDelegated(1000, pure, "1:name=systemd:/\n") as { why: string }).why).toBe("this process is in no cgroup v2 group");
  // this machine's /sys/fs/cgroup/user.slice is not ours: nothing is delegated to a stranger uid
  expect((findDelegated(4242, pure, "0::/user.slice/user-4242.slice/session-1.scope\n") as { why: string }).why).toContain("is delegated to uid 4242");
});

test("the cgroup manager: systemd's user manager where its private socket answers, BUNKER_CGROUP_MANAGER chooses", () => {
  const dir = mkdtempSync(`${tmpdir()}/bunker-sd-`);
  try {
    expect(cgroupManager({ XDG_RUNTIME_DIR: dir })).toEqual({ kind: "cgroupfs" });
    expect(cgroupManager({ XDG_RUNTIME_DIR: dir, BUNKER_CGROUP_MANAGER: "systemd" })).toMatchObject({ kind: "systemd", why: expect.stringContaining("no systemd user manager") });
    mkdirSync(`${dir}/systemd`);
    const server = Bun.listen({ unix: `${dir}/systemd/private`, socket: { data() {} } });
    try {
      expect(cgroupManager({ XDG_RUNTIME_DIR: dir })).toEqual({ kind: "systemd", socket: `${dir}/systemd/private`, forced: false });
      expect(cgroupManager({ XDG_RUNTIME_DIR: dir, BUNKER_CGROUP_MANAGER: "systemd" })).toEqual({ kind: "systemd", socket: `${dir}/systemd/private`, forced: true });
      expect(cgroupManager({ XDG_RUNTIME_DIR: dir, BUNKER_CGROUP_MANAGER: "cgroupfs" })).toEqual({ kind: "cgroupfs" });
    } finally {
      server.stop(true);
    }
    expect(() => cgroupManager({ BUNKER_CGROUP_MANAGER: "cgmanager" })).toThrow("BUNKER_CGROUP_MANAGER=cgmanager: use systemd or cgroupfs");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("io.stat summed over devices", () => {
  expect(ioBytes("8:0 rbytes=100 wbytes=5 rios=1 wios=1\n8:16 rbytes=1 wbytes=2\n")).toEqual({ read: 101, write: 7 });
});

test("storage: the kernel's overlay from Linux 5.11, else fuse-overlayfs where it can be used, else a copy; BUNKER_STORAGE chooses", async () => {
  const { fuseOverlayfs, storageMode } = await import("../../src/runtime/host.ts");
  const tool = "/usr/bin/fuse-overlayfs";
  const ok = () => ({ tool });
  const missing = () => ({ why: "fuse-overlayfs is not installed (the fuse-overlayfs package)" });
  const host = (release: string, asked: string | undefined, fuse: () => { tool: string } | { why: string }) => ({ release, asked, fuse });
  expect(storageMode(host("6.1.0-13-amd64", undefined, ok))).toEqual({ mode: "overlay" });
  expect(storageMode(host("5.11.0", undefined, ok))).toEqual({ mode: "overlay" });
  expect(storageMode(host("5.10.0-26-amd64", undefined, ok))).toEqual({ mode: "fuse-overlayfs", tool });
  expect(storageMode(host("5.10.0-26-amd64", undefined, missing))).toEqual({ mode: "copy", why: "overlayfs in a user namespace needs Linux 5.11, and this is 5.10, and fuse-overlayfs is not installed (the fuse-overlayfs package)" });
  expect(storageMode(host("6.1.0", "copy", ok))).toEqual({ mode: "copy", why: "BUNKER_STORAGE=copy" });
  expect(storageMode(host("5.10.0", "overlay", missing))).toEqual({ mode: "overlay" });
  expect(storageMode(host("6.1.0", "fuse-overlayfs", ok))).toEqual({ mode: "fuse-overlayfs", tool });
  expect(() => storageMode(host("6.1.0", "fuse-overlayfs", missing))).toThrow("BUNKER_STORAGE=fuse-overlayfs, but fuse-overlayfs is not installed (the fuse-overlayfs package)");
  expect(() => storageMode(host("6.1.0", "vfs", ok))).toThrow('BUNKER_STORAGE must be overlay, fuse-overlayfs or copy, not "vfs"');
  // what can be used: installed, /dev/fuse, and 1.8 or later (the first to read the store's user.overlay.opaque marks)
  const find = (n: string) => (n === "fuse-overlayfs" ? tool : undefined);
  expect(fuseOverlayfs(() => undefined, () => true, () => [1, 10])).toEqual({ why: "fuse-overlayfs is not installed (the fuse-overlayfs package)" });
  expect(fuseOverlayfs(find, () => false, () => [1, 10])).toEqual({ why: "there is no /dev/fuse" });
  expect(fuseOverlayfs(find, () => true, () => [1, 10])).toEqual({ tool });
  expect(fuseOverlayfs(find, () => true, () => [1, 8])).toEqual({ tool });
  expect(fuseOverlayfs(find, () => true, () => [1, 4])).toEqual({ why: "fuse-overlayfs 1.4 is older than 1.8, the first to read the store's layers (their user.overlay.opaque marks)" });
  expect(fuseOverlayfs(find, () => true, () => [0, 7])).toMatchObject({ why: expect.stringContaining("fuse-overlayfs 0.7 is older") });
  expect(fuseOverlayfs(find, () => true, () => undefined)).toMatchObject({ why: expect.stringContaining("of unknown version") });
});

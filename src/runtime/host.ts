// What this host offers a rootless runtime, read cheaply and only when needed.
import { records } from "../etcfile.ts";
import { BunkerError } from "../errors.ts";
import { parseSubids, type SubRange } from "../linux/idmap.ts";
import { executable, stat, tryRead } from "../linux/sys.ts";

export interface Identity {
  uid: number;
  gid: number;
  /** The login name, looked up in /etc/passwd on first use (the uid if none). */
  readonly user: string;
}

export function identity(): Identity {
  const uid = process.getuid!();
  let user: string | undefined;
  return {
    uid,
    gid: process.getgid!(),
    get user() {
      user ??= records(tryRead("/etc/passwd")).find((f) => f[2] === String(uid) && f[0])?.[0] ?? String(uid);
      return user;
    },
  };
}

const helpers = new Map<string, string | undefined>();

/** The path of a setuid helper such as newuidmap, or undefined; looked up once. */
export function findHelper(name: string): string | undefined {
  if (!helpers.has(name)) {
    const dirs = (process.env.PATH ?? "").split(":").concat(["/usr/bin", "/usr/sbin", "/bin", "/sbin"]);
    helpers.set(name, dirs.filter((d) => d.startsWith("/")).map((d) => `${d}/${name}`).find(executable));
  }
  return helpers.get(name);
}

export interface SubIds {
  uids: SubRange[];
  gids: SubRange[];
}

export function subIds(id: Identity): SubIds {
  return {
    uids: parseSubids(tryRead("/etc/subuid") ?? "", id.user, id.uid),
    gids: parseSubids(tryRead("/etc/subgid") ?? "", id.user, id.gid),
  };
}

/** Refuse early, with the fix, when this kernel will not give an unprivileged
 * user a user namespace. Returns a hint for later failures, if any. */
export function checkUserNamespaces(read: (path: string) => string | undefined = tryRead): string | undefined {
  if (read("/proc/sys/user/max_user_namespaces")?.trim() === "0") {
    throw new BunkerError(
      "unprivileged user namespaces are disabled (user.max_user_namespaces=0): run 'sudo sysctl -w user.max_user_namespaces=15000'",
    );
  }
  if (read("/proc/sys/kernel/unprivileged_userns_clone")?.trim() === "0") {
    throw new BunkerError(
      "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone=0): run 'sudo sysctl -w kernel.unprivileged_userns_clone=1'",
    );
  }
  if (read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")?.trim() === "1") {
    return "AppArmor restricts unprivileged user namespaces here (kernel.apparmor_restrict_unprivileged_userns=1): run 'sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0' or give bunker an AppArmor profile with 'userns,'";
  }
  return undefined;
}

/** bunker needs openat2 (Linux 5.6) to resolve paths inside a root safely. */
export function checkKernel(release = tryRead("/proc/sys/kernel/osrelease")): void {
  const m = /^(\d+)\.(\d+)/.exec(release ?? "");
  if (m && (Number(m[1]) < 5 || (Number(m[1]) === 5 && Number(m[2]) < 6))) {
    throw new BunkerError(`Linux ${m[1]}.${m[2]} is too old: bunker needs Linux 5.6 or later (openat2)`);
  }
}

export type Storage = { mode: "overlay" } | { mode: "fuse-overlayfs"; tool: string } | { mode: "copy"; why: string };

/** What storageMode reads of the host; tests give their own. */
export interface StorageHost {
  release?: string;
  /** BUNKER_STORAGE. */
  asked?: string;
  /** fuse-overlayfs's path, or why it cannot be used. */
  fuse(): { tool: string } | { why: string };
}

/** fuse-overlayfs 1.8 is the first to read overlayfs's user.overlay.* marks, which the store's layers carry. */
const FUSE_MIN = [1, 8];

export function fuseOverlayfs(find = findHelper, hasDevice = () => stat("/dev/fuse") !== undefined, version = fuseVersion): { tool: string } | { why: string } {
  const tool = find("fuse-overlayfs");
  if (!tool) return { why: "fuse-overlayfs is not installed (the fuse-overlayfs package)" };
  if (!hasDevice()) return { why: "there is no /dev/fuse" };
  const v = version(tool);
  if (!v || v[0]! < FUSE_MIN[0]! || (v[0] === FUSE_MIN[0] && v[1]! < FUSE_MIN[1]!)) {
    return { why: `fuse-overlayfs ${v ? v.join(".") : "of unknown version"} is older than ${FUSE_MIN.join(".")}, the first to read the store's layers (their user.overlay.opaque marks)` };
  }
  return { tool };
}

function fuseVersion(tool: string): number[] | undefined {
  const out = Bun.spawnSync([tool, "--version"], { stdout: "pipe", stderr: "pipe", env: {} });
  const m = /version (\d+)\.(\d+)/.exec(out.stdout.toString() + out.stderr.toString());
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/**
 * How containers of the store get their root: an overlay of the image's
 * layers, by the kernel (overlayfs in a user namespace needs Linux 5.11), or
 * else by fuse-overlayfs where it is installed, or else a copy, and why a
 * copy. BUNKER_STORAGE=overlay|fuse-overlayfs|copy chooses, as Podman's
 * storage driver option does.
 */
export function storageMode(host: StorageHost = { release: tryRead("/proc/sys/kernel/osrelease"), asked: process.env.BUNKER_STORAGE, fuse: () => fuseOverlayfs() }): Storage {
  const { release, asked } = host;
  if (asked === "overlay") return { mode: asked };
  if (asked === "copy") return { mode: asked, why: "BUNKER_STORAGE=copy" };
  if (asked === "fuse-overlayfs") {
    const fuse = host.fuse();
    if ("why" in fuse) throw new BunkerError(`BUNKER_STORAGE=fuse-overlayfs, but ${fuse.why}`);
    return { mode: asked, tool: fuse.tool };
  }
  if (asked) throw new BunkerError(`BUNKER_STORAGE must be overlay, fuse-overlayfs or copy, not "${asked}"`);
  const m = /^(\d+)\.(\d+)/.exec(release ?? "");
  if (m && (Number(m[1]) < 5 || (Number(m[1]) === 5 && Number(m[2]) < 11))) {
    const fuse = host.fuse();
    if ("tool" in fuse) return { mode: "fuse-overlayfs", tool: fuse.tool };
    return { mode: "copy", why: `overlayfs in a user namespace needs Linux 5.11, and this is ${m[1]}.${m[2]}, and ${fuse.why}` };
  }
  return { mode: "overlay" };
}

/**
 * Whether the unpacker hashes a bundle's files as it writes them
 * (ffi/sha256.h): on an x86 CPU with the SHA extensions, and SSSE3 and
 * SSE4.1, which it checks again. Elsewhere bunker hashes them itself, as
 * BUNKER_SHA256=bunker asks (BUNKER_SHA256=unpacker insists).
 */
export function unpackerHashes(cpuinfo: () => string | undefined = () => tryRead("/proc/cpuinfo"), asked = process.env.BUNKER_SHA256): boolean {
  if (asked === "bunker") return false;
  if (asked !== undefined && asked !== "unpacker") throw new BunkerError(`BUNKER_SHA256 must be bunker or unpacker, not "${asked}"`);
  const flags = new Set(/^flags\s*:(.*)$/m.exec(cpuinfo() ?? "")?.[1]?.trim().split(/\s+/));
  const able = ["sha_ni", "ssse3", "sse4_1"].every((f) => flags.has(f));
  if (asked && !able) throw new BunkerError("BUNKER_SHA256=unpacker, but this CPU lacks the SHA extensions: unset it");
  return able;
}

/** Namespaces this kernel has: cgroup namespaces need Linux 4.6. */
export function hasNamespace(type: string): boolean {
  const name = type === "network" ? "net" : type === "mount" ? "mnt" : type;
  return stat(`/proc/self/ns/${name}`, false) !== undefined;
}

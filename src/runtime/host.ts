// What this host offers a rootless runtime, read cheaply and only when needed.
import { BunkerError } from "../errors.ts";
import { parseSubids, type SubRange } from "../linux/idmap.ts";
import { executable, stat, tryRead as readText } from "../linux/sys.ts";

export interface Identity {
  uid: number;
  gid: number;
  user: string;
}

export function identity(): Identity {
  const uid = process.getuid!();
  const gid = process.getgid!();
  let user = String(uid);
  for (const line of (readText("/etc/passwd") ?? "").split("\n")) {
    const f = line.split(":");
    if (f[2] === String(uid) && f[0]) {
      user = f[0];
      break;
    }
  }
  return { uid, gid, user };
}

/** The path of a setuid helper such as newuidmap, or undefined. */
export function findHelper(name: string): string | undefined {
  const dirs = (process.env.PATH ?? "").split(":").concat(["/usr/bin", "/usr/sbin", "/bin", "/sbin"]);
  for (const d of dirs) {
    if (!d.startsWith("/")) continue;
    const p = `${d}/${name}`;
    if (executable(p)) return p;
  }
  return undefined;
}

export interface SubIds {
  uids: SubRange[];
  gids: SubRange[];
}

export function subIds(id: Identity): SubIds {
  return {
    uids: parseSubids(readText("/etc/subuid") ?? "", id.user, id.uid),
    gids: parseSubids(readText("/etc/subgid") ?? "", id.user, id.gid),
  };
}

/** Refuse early, with the fix, when this kernel will not give an unprivileged
 * user a user namespace. Returns a hint for later failures, if any. */
export function checkUserNamespaces(read: (path: string) => string | undefined = readText): string | undefined {
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

/** Namespaces this kernel has: cgroup namespaces need Linux 4.6. */
export function hasNamespace(type: string): boolean {
  const name = type === "network" ? "net" : type === "mount" ? "mnt" : type;
  return stat(`/proc/self/ns/${name}`, false) !== undefined;
}

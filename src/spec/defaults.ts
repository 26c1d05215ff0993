// The default container, as `runc spec` describes it, adjusted for rootless use.
import { DEFAULT_CAPS } from "../linux/caps.ts";
import type { IdMapping, Mount, NamespaceType, Spec } from "./types.ts";

// what crun 1.8 and runc 1.1 both accept
export const OCI_VERSION = "1.0.2";
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** runc's default masked paths. */
export const MASKED_PATHS = [
  "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
  "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
];

/** runc's default read-only paths. */
export const READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

export function defaultMounts(opts: { network: boolean; gid5: boolean }): Mount[] {
  const pts = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"];
  if (opts.gid5) pts.push("gid=5");
  return [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    { destination: "/dev/pts", type: "devpts", source: "devpts", options: pts },
    { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    // sysfs can only be mounted by the owner of the network namespace; without
    // one of our own, bind the host's read-only, as rootless runc does.
    opts.network
      ? { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] }
      : { destination: "/sys", type: "none", source: "/sys", options: ["rbind", "nosuid", "noexec", "nodev", "rro"] },
    { destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["nosuid", "noexec", "nodev", "relatime", "ro"] },
  ];
}

export function defaultNamespaces(network: boolean): { type: NamespaceType }[] {
  const ns: NamespaceType[] = ["pid", "ipc", "uts", "mount", "user", "cgroup"];
  if (network) ns.push("network");
  return ns.map((type) => ({ type }));
}

export interface DefaultSpecOptions {
  rootless: boolean;
  uidMappings?: IdMapping[];
  gidMappings?: IdMapping[];
}

/** What `bunker spec` writes, like `runc spec [--rootless]`. */
export function defaultSpec(opts: DefaultSpecOptions): Spec {
  const caps = [...DEFAULT_CAPS];
  const spec: Spec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: true,
      user: { uid: 0, gid: 0 },
      args: ["sh"],
      env: [`PATH=${DEFAULT_PATH}`, "TERM=xterm"],
      cwd: "/",
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: "rootfs", readonly: true },
    hostname: "bunker",
    // runc and crun know "ro" on a bind; "rro" (recursive) is bunker's own choice
    mounts: defaultMounts({ network: !opts.rootless, gid5: !opts.rootless }).map((m) => ({
      ...m,
      options: m.options?.map((o) => (o === "rro" ? "ro" : o)),
    })),
    linux: {
      namespaces: defaultNamespaces(!opts.rootless),
      maskedPaths: [...MASKED_PATHS],
      readonlyPaths: [...READONLY_PATHS],
    },
  };
  if (opts.rootless) {
    spec.linux!.uidMappings = opts.uidMappings;
    spec.linux!.gidMappings = opts.gidMappings;
  } else {
    spec.linux!.namespaces = spec.linux!.namespaces!.filter((n) => n.type !== "user");
  }
  return spec;
}

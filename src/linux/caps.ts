// Linux capabilities by name, and the sets bunker grants.

export const CAPABILITIES = [
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
  "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
  "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
  "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
  "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
  "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
] as const;

/** Docker's default set for root in a container (moby oci/caps/defaults.go). */
export const DEFAULT_CAPS: readonly string[] = [
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
  "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

/** "net_admin", "NET_ADMIN" and "CAP_NET_ADMIN" all name CAP_NET_ADMIN; "ALL" stays "ALL". */
export function normalizeCap(name: string): string {
  const up = name.trim().toUpperCase();
  if (up === "ALL") return up;
  const full = up.startsWith("CAP_") ? up : `CAP_${up}`;
  if (!(CAPABILITIES as readonly string[]).includes(full)) {
    throw new Error(`unknown capability "${name}"`);
  }
  return full;
}

/** Docker's --cap-add/--cap-drop arithmetic over a base set. */
export function adjustCaps(base: readonly string[], add: readonly string[], drop: readonly string[]): string[] {
  const adds = add.map(normalizeCap);
  const drops = drop.map(normalizeCap);
  let set = new Set(base.map(normalizeCap));
  if (drops.includes("ALL")) set = new Set();
  else for (const d of drops) set.delete(d);
  if (adds.includes("ALL")) set = new Set(CAPABILITIES);
  else for (const a of adds) set.add(a);
  return CAPABILITIES.filter((c) => set.has(c));
}

export function capMask(names: readonly string[] = []): bigint {
  let m = 0n;
  for (const n of names) m |= 1n << BigInt(CAPABILITIES.indexOf(normalizeCap(n) as (typeof CAPABILITIES)[number]));
  return m;
}

// Check a runtime spec before anything is compiled or created. Each problem
// is one sentence; the caller reports the first few.
import { CAPABILITIES } from "../linux/caps.ts";
import { checkMaps, mapsContain } from "../linux/idmap.ts";
import { RLIMITS } from "../linux/compile.ts";
import type { IdMapping, Spec } from "./types.ts";

const NAMESPACES = new Set(["pid", "network", "mount", "ipc", "uts", "user", "cgroup"]);
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,62})$/;

export function validateSpec(spec: Spec): string[] {
  const errs: string[] = [];
  if (typeof spec.ociVersion !== "string" || !spec.ociVersion.startsWith("1.")) {
    errs.push(`ociVersion "${spec.ociVersion}" is not a 1.x runtime spec`);
  }
  const p = spec.process;
  if (!p) {
    errs.push("process is missing");
  } else {
    if (!Array.isArray(p.args) || p.args.length === 0 || p.args.some((a) => typeof a !== "string")) {
      errs.push("process.args is empty: give a command");
    }
    if (typeof p.cwd !== "string" || !p.cwd.startsWith("/")) errs.push(`process.cwd "${p.cwd}" is not an absolute path`);
    for (const e of p.env ?? []) {
      if (typeof e !== "string" || e.indexOf("=") <= 0) errs.push(`process.env entry "${e}" is not NAME=VALUE`);
    }
    for (const k of ["uid", "gid"] as const) {
      const id = p.user?.[k];
      if (!Number.isSafeInteger(id) || id! < 0 || id! > 2 ** 32 - 2) errs.push(`process.user.${k} is not a valid id`);
    }
    const caps = p.capabilities ?? {};
    for (const [set, list] of Object.entries(caps)) {
      for (const c of (list as string[] | undefined) ?? []) {
        if (!(CAPABILITIES as readonly string[]).includes(c)) errs.push(`process.capabilities.${set}: unknown capability "${c}"`);
      }
    }
    for (const r of p.rlimits ?? []) {
      if (!Object.hasOwn(RLIMITS, r.type)) errs.push(`process.rlimits: unknown type "${r.type}"`);
      else if (![r.soft, r.hard].every((v) => Number.isSafeInteger(v) && v >= 0)) errs.push(`process.rlimits: ${r.type} limits are not whole numbers of 0 or more`);
      else if (!(r.soft <= r.hard)) errs.push(`process.rlimits: ${r.type} soft limit is above the hard limit`);
    }
    const umask = p.user?.umask;
    if (umask !== undefined && !(Number.isSafeInteger(umask) && umask >= 0 && umask <= 0o777)) errs.push("process.user.umask is not a mode from 0 to 0777");
  }
  if (!spec.root?.path) errs.push("root.path is missing");
  if (spec.hostname !== undefined && spec.hostname !== "" && !HOSTNAME.test(spec.hostname)) {
    errs.push(`hostname "${spec.hostname}" is not a valid host name`);
  }
  for (const m of spec.mounts ?? []) {
    if (typeof m.destination !== "string" || !m.destination.startsWith("/")) {
      errs.push(`mount destination "${m.destination}" is not an absolute path`);
    }
  }
  const uids = spec.linux?.uidMappings ?? [];
  const gids = spec.linux?.gidMappings ?? [];
  // uid=/gid= name ids inside the user namespace (devpts's gid=5 is dropped by the compiler instead)
  for (const m of spec.mounts ?? []) {
    if (m.type === "devpts") continue;
    for (const o of m.options ?? []) {
      const [k, v] = o.split("=");
      const maps = k === "uid" ? uids : k === "gid" ? gids : undefined;
      if (maps?.length && !mapsContain(maps, Number(v))) errs.push(`mount ${m.destination}: ${o} is not mapped into the container`);
    }
  }
  const linux = spec.linux ?? {};
  const ns = new Set<string>();
  for (const n of linux.namespaces ?? []) {
    if (!NAMESPACES.has(n.type)) errs.push(`namespace "${n.type}" is not supported`);
    if (n.path) errs.push(`joining an existing ${n.type} namespace (${n.path}) is not supported`);
    ns.add(n.type);
  }
  if (spec.hostname && !ns.has("uts")) errs.push("a hostname needs a uts namespace");
  errs.push(...checkMaps(uids, "uidMappings"), ...checkMaps(gids, "gidMappings"));
  if (p?.user && uids.length && gids.length) {
    if (!mapsContain(uids, p.user.uid)) {
      errs.push(`user ${p.user.uid} is not mapped into the container (the uid map covers ${describe(uids)}): add subordinate ids to /etc/subuid or run as root`);
    }
    for (const g of [p.user.gid, ...(p.user.additionalGids ?? [])]) {
      if (!mapsContain(gids, g)) {
        errs.push(`group ${g} is not mapped into the container (the gid map covers ${describe(gids)}): add subordinate ids to /etc/subgid`);
      }
    }
  }
  return errs;
}

function describe(maps: IdMapping[]): string {
  return maps.map((m) => (m.size === 1 ? `${m.containerID}` : `${m.containerID}-${m.containerID + m.size - 1}`)).join(", ");
}

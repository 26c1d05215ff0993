// User-namespace id maps: /etc/subuid parsing and the arithmetic of maps.
import { records } from "../etcfile.ts";
import type { IdMapping } from "../spec/types.ts";

export interface SubRange {
  start: number;
  count: number;
}

/** Ranges for a user in /etc/subuid or /etc/subgid text ("name:start:count"
 * or "uid:start:count" per line). */
export function parseSubids(text: string, user: string, id: number): SubRange[] {
  const out: SubRange[] = [];
  for (const [who, start, count] of records(text)) {
    if (who !== user && who !== String(id)) continue;
    const s = Number(start);
    const c = Number(count);
    if (Number.isSafeInteger(s) && Number.isSafeInteger(c) && s >= 0 && c > 0) out.push({ start: s, count: c });
  }
  return out;
}

/** Container 0 is the user; 1.. are the subordinate ranges, one after another. */
export function rangeMaps(hostId: number, ranges: SubRange[]): IdMapping[] {
  const maps: IdMapping[] = [{ containerID: 0, hostID: hostId, size: 1 }];
  let next = 1;
  for (const r of ranges) {
    maps.push({ containerID: next, hostID: r.start, size: r.count });
    next += r.count;
  }
  return maps;
}

export function singleMap(hostId: number): IdMapping[] {
  return [{ containerID: 0, hostID: hostId, size: 1 }];
}

/** Is container id `id` mapped? */
export function mapsContain(maps: readonly IdMapping[], id: number): boolean {
  for (const m of maps) if (id >= m.containerID && id < m.containerID + m.size) return true; // once or twice per unpacked entry: no closure
  return false;
}

/** Problems with a map, in words; an empty list means it is usable. */
export function checkMaps(maps: readonly IdMapping[], what: string): string[] {
  const errs: string[] = [];
  if (maps.length === 0) errs.push(`${what}: no mappings`);
  if (maps.length > 340) errs.push(`${what}: more than 340 mappings`);
  const max = 2 ** 32 - 1;
  for (const m of maps) {
    for (const k of ["containerID", "hostID", "size"] as const) {
      if (!Number.isSafeInteger(m[k]) || m[k] < 0 || m[k] > max) errs.push(`${what}: ${k} ${m[k]} is out of range`);
    }
    if (m.size === 0) errs.push(`${what}: a mapping of size 0`);
  }
  const overlap = (key: "containerID" | "hostID") => {
    const sorted = [...maps].sort((a, b) => a[key] - b[key]);
    return sorted.some((m, i) => i > 0 && sorted[i - 1]![key] + sorted[i - 1]!.size > m[key]);
  };
  if (overlap("containerID")) errs.push(`${what}: container ranges overlap`);
  if (overlap("hostID")) errs.push(`${what}: host ranges overlap`);
  return errs;
}

/** The text the kernel takes in /proc/PID/uid_map. */
export function formatMap(maps: readonly IdMapping[]): string {
  return maps.map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join("");
}

/** Arguments after the pid for newuidmap/newgidmap. */
export function newidmapArgs(maps: readonly IdMapping[]): string[] {
  return maps.flatMap((m) => [String(m.containerID), String(m.hostID), String(m.size)]);
}

/** A map the user may write directly: only their own id, once. */
export function isSelfMap(maps: readonly IdMapping[], hostId: number): boolean {
  return maps.length === 1 && maps[0]!.hostID === hostId && maps[0]!.size === 1;
}

export interface MapChoice {
  uidMappings: IdMapping[];
  gidMappings: IdMapping[];
  /** Why a one-id map was used, for a one-line notice. */
  notice?: string;
}

/** --userns=auto|single: subordinate ranges when the user has them and the
 * setuid helpers exist; otherwise (or when asked) only the user's own ids. */
export function chooseMaps(
  mode: "auto" | "single",
  who: { uid: number; gid: number; user: string },
  subIds: () => { uids: SubRange[]; gids: SubRange[] },
  helper: (name: "newuidmap" | "newgidmap") => string | undefined,
): MapChoice {
  const single = { uidMappings: singleMap(who.uid), gidMappings: singleMap(who.gid) };
  if (mode === "single") return single;
  const sub = subIds();
  if (sub.uids.length === 0 || sub.gids.length === 0) {
    return {
      ...single,
      notice: `no subordinate ids for ${who.user} in /etc/subuid and /etc/subgid: using a one-id map (only root exists in the container; 'sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${who.user}' adds a range)`,
    };
  }
  if (!helper("newuidmap") || !helper("newgidmap")) {
    return {
      ...single,
      notice: "newuidmap/newgidmap not found: using a one-id map (install the uidmap package for subordinate id ranges)",
    };
  }
  return { uidMappings: rangeMaps(who.uid, sub.uids), gidMappings: rangeMaps(who.gid, sub.gids) };
}

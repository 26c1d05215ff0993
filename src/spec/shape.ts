// A config.json is untrusted input: check its shape before anything reads it,
// so that a wrong type is a clear message, not a crash deep inside bunker.

type Shape =
  | "string"
  | "number"
  | "boolean"
  | { array: Shape }
  | { record: Shape }
  | { fields: Record<string, Shape>; required?: string[] };

const str = "string" as const;
const num = "number" as const;
const bool = "boolean" as const;
const array = (s: Shape): Shape => ({ array: s });
const obj = (fields: Record<string, Shape>, required: string[] = []): Shape => ({ fields, required });

const strings = array(str);
const idMap = array(obj({ containerID: num, hostID: num, size: num }, ["containerID", "hostID", "size"]));

/** The parts of the OCI runtime spec that bunker reads. */
const SPEC: Shape = obj(
  {
    ociVersion: str,
    hostname: str,
    domainname: str,
    annotations: { record: str },
    root: obj({ path: str, readonly: bool }, ["path"]),
    process: obj(
      {
        terminal: bool,
        consoleSize: obj({ height: num, width: num }),
        user: obj({ uid: num, gid: num, umask: num, additionalGids: array(num) }, ["uid", "gid"]),
        args: strings,
        env: strings,
        cwd: str,
        capabilities: obj({ bounding: strings, effective: strings, inheritable: strings, permitted: strings, ambient: strings }),
        rlimits: array(obj({ type: str, soft: num, hard: num }, ["type", "soft", "hard"])),
        noNewPrivileges: bool,
      },
      ["user", "cwd"],
    ),
    mounts: array(obj({ destination: str, type: str, source: str, options: strings }, ["destination"])),
    linux: obj({
      namespaces: array(obj({ type: str, path: str }, ["type"])),
      uidMappings: idMap,
      gidMappings: idMap,
      maskedPaths: strings,
      readonlyPaths: strings,
      rootfsPropagation: str,
    }),
  },
  ["ociVersion", "root"],
);

/** What of linux.resources bunker applies (through a delegated cgroup v2), or may skip: device rules. */
const APPLIED_RESOURCES = new Set(["devices", "memory", "cpu", "pids", "blockIO"]);

/** Settings bunker does not apply yet: named in one warning rather than dropped in silence. */
const UNSUPPORTED = [
  "hooks", "process.apparmorProfile", "process.selinuxLabel", "process.oomScoreAdj", "process.ioPriority",
  "process.scheduler", "linux.seccomp", "linux.resources", "linux.devices", "linux.sysctl", "linux.mountLabel",
  "linux.personality", "linux.intelRdt", "linux.timeOffsets", "linux.cgroupsPath",
];

function describe(v: unknown): string {
  return Array.isArray(v) ? "an array" : v === null ? "null" : typeof v === "object" ? "an object" : `a ${typeof v}`;
}

function walk(v: unknown, s: Shape, at: string, errs: string[]): void {
  if (typeof s === "string") {
    if (typeof v !== s) errs.push(`${at} is ${describe(v)}, not a ${s}`);
    else if (s === "string" && (v as string).includes("\0")) errs.push(`${at} holds a NUL byte`);
    else if (s === "number" && !Number.isFinite(v)) errs.push(`${at} is not a finite number`);
    return;
  }
  if ("array" in s) {
    if (!Array.isArray(v)) return void errs.push(`${at} is ${describe(v)}, not an array`);
    v.forEach((item, i) => walk(item, s.array, `${at}[${i}]`, errs));
    return;
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return void errs.push(`${at} is ${describe(v)}, not an object`);
  const o = v as Record<string, unknown>;
  if ("record" in s) {
    for (const [k, item] of Object.entries(o)) walk(item, s.record, `${at}.${k}`, errs);
    return;
  }
  for (const r of s.required ?? []) if (o[r] === undefined) errs.push(`${at}.${r} is missing`);
  for (const [k, shape] of Object.entries(s.fields)) {
    if (o[k] !== undefined) walk(o[k], shape, `${at}.${k}`, errs);
  }
}

/** Problems with the shape of a parsed config.json, each naming where it is. */
export function checkShape(config: unknown): string[] {
  const errs: string[] = [];
  walk(config, SPEC, "config.json", errs);
  return errs;
}

/** The settings of a config.json that bunker ignores, for a warning. Device
 * cgroup rules are not among them: no rootless runtime can apply them, and
 * `crun spec --rootless` writes one. */
export function unsupported(config: unknown): string[] {
  return UNSUPPORTED.filter((path) => {
    let v: unknown = config;
    for (const k of path.split(".")) v = typeof v === "object" && v !== null ? (v as Record<string, unknown>)[k] : undefined;
    if (v === undefined || v === null) return false;
    if (typeof v !== "object") return true;
    return Object.keys(v).some((k) => !(path === "linux.resources" && APPLIED_RESOURCES.has(k)));
  });
}

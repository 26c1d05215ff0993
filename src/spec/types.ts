// The part of the OCI runtime spec (config.json, version 1.x) that bunker reads.
// https://github.com/opencontainers/runtime-spec/blob/main/config.md

export interface Spec {
  ociVersion: string;
  process?: Process;
  root?: { path: string; readonly?: boolean };
  hostname?: string;
  domainname?: string;
  mounts?: Mount[];
  annotations?: Record<string, string>;
  linux?: Linux;
}

export interface Process {
  terminal?: boolean;
  consoleSize?: { height: number; width: number };
  user: User;
  args?: string[];
  env?: string[];
  cwd: string;
  capabilities?: Capabilities;
  rlimits?: { type: string; soft: number; hard: number }[];
  noNewPrivileges?: boolean;
}

export interface User {
  uid: number;
  gid: number;
  umask?: number;
  additionalGids?: number[];
}

export interface Capabilities {
  bounding?: string[];
  effective?: string[];
  inheritable?: string[];
  permitted?: string[];
  ambient?: string[];
}

export interface Mount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

export interface IdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

export type NamespaceType = "pid" | "network" | "mount" | "ipc" | "uts" | "user" | "cgroup" | "time";

export interface Linux {
  namespaces?: { type: NamespaceType; path?: string }[];
  uidMappings?: IdMapping[];
  gidMappings?: IdMapping[];
  maskedPaths?: string[];
  readonlyPaths?: string[];
  rootfsPropagation?: string;
  resources?: unknown;
  devices?: unknown[];
  sysctl?: Record<string, string>;
  seccomp?: unknown;
  cgroupsPath?: string;
}

/** What bunker adds beside the spec: choices that have no place in config.json. */
export interface RunOptions {
  /** Keep stdin open (-i). */
  interactive: boolean;
  /** Run a built-in init as PID 1 (--init). */
  init: boolean;
  /** Container name (--name). */
  name?: string;
  /** The image's declared volumes no mount covers: their mount points are made, as Docker makes them. */
  volumes?: string[];
}

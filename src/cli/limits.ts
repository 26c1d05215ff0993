// The limit flags `run` and `update` share, with Docker's names.
import type { LimitFlags } from "../runtime/cgroup.ts";
import type { Values } from "./args.ts";

export const limitArgs = {
  memory: { type: "string", alias: "m", description: "Memory limit (needs a delegated cgroup v2)", valueHint: "SIZE" },
  "memory-swap": { type: "string", description: "Memory plus swap limit (-1: unlimited swap)", valueHint: "SIZE" },
  "memory-reservation": { type: "string", description: "Memory soft limit (memory.low)", valueHint: "SIZE" },
  cpus: { type: "string", description: "CPU quota in CPUs, like 0.5", valueHint: "N" },
  "cpu-shares": { type: "string", alias: "c", description: "CPU weight in Docker's shares (2-262144)", valueHint: "N" },
  "cpuset-cpus": { type: "string", description: "CPUs to run on, like 0-1,3", valueHint: "LIST" },
  "pids-limit": { type: "string", description: "Most processes at once (-1: unlimited)", valueHint: "N" },
  "io-weight": { type: "string", description: "Block I/O weight (10-1000)", valueHint: "N" },
} as const;

export function limitFlags(v: Values): LimitFlags {
  const s = (k: keyof typeof limitArgs) => v[k] as string | undefined;
  return {
    memory: s("memory"),
    memorySwap: s("memory-swap"),
    memoryReservation: s("memory-reservation"),
    cpus: s("cpus"),
    cpuShares: s("cpu-shares"),
    cpusetCpus: s("cpuset-cpus"),
    pidsLimit: s("pids-limit"),
    ioWeight: s("io-weight"),
  };
}

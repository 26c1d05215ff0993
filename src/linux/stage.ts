// Hand a plan to the C stage: put the stage binary in a sealed memfd, the
// plan in a second memfd, and fexecve(). The Bun process ends here; the
// container's lifetime is the stage's.
//
// The build compiles ffi/stage.c to build/bunker-stage; `bun build --compile`
// embeds it, so dist/bunker is the one file a host needs.
import stagePath from "../../build/bunker-stage" with { type: "file" };
import { BunkerError } from "../errors.ts";
import { stateRoot } from "../runtime/state.ts";
import type { Plan } from "./plan.ts";
import * as sys from "./sys.ts";

let loaded: Promise<Uint8Array> | undefined;

/** The stage's bytes, read once per process (an import spawns a stage per layer). */
function stageBytes(): Promise<Uint8Array> {
  return (loaded ??= (async () => {
    const f = Bun.file(stagePath);
    if (!(await f.exists())) throw new BunkerError(`the C stage is missing (${stagePath}): run 'npm run build'`);
    return new Uint8Array(await f.arrayBuffer());
  })());
}

/** The stage as a sealed, executable memfd: a container can see it as
 * /proc/1/exe under --init, but can never write it. */
function sealedStage(bytes: Uint8Array): number {
  let fd: number;
  try {
    fd = sys.memfd("bunker-stage", sys.MFD_CLOEXEC | sys.MFD_ALLOW_SEALING | sys.MFD_EXEC);
  } catch (e) {
    // kernels before 6.3 know no MFD_EXEC: every memfd is executable there
    if (!(e instanceof sys.SysError) || e.code !== "EINVAL") throw e;
    fd = sys.memfd("bunker-stage", sys.MFD_CLOEXEC | sys.MFD_ALLOW_SEALING);
  }
  sys.writeAll(fd, bytes);
  sys.seal(fd, sys.F_SEAL_ALL);
  return fd;
}

/** Where vm.memfd_noexec=2 forbids executing memfds: a private copy in the
 * state dir, named by its content so that an upgrade never runs an old one. */
function stageFile(bytes: Uint8Array, stateDir: string): string {
  const path = `${stateDir}/bunker-stage-${Bun.hash(bytes).toString(16)}`;
  if (sys.stat(path)?.size !== bytes.length) sys.writeAtomic(path, bytes, 0o500);
  return path;
}

/** The kernel refused to create or execute an executable memfd (our SysError, or Bun.spawn's error). */
const refused = (e: unknown) => ["EACCES", "EPERM"].includes((e as { code?: string } | undefined)?.code ?? "");

const noExec = (stateDir: string) =>
  new BunkerError(
    `cannot execute the C stage: this kernel forbids executing memfds (vm.memfd_noexec) and ${stateDir} is mounted noexec; set XDG_RUNTIME_DIR to a directory on a file system that allows exec`,
  );

export interface StageProcess {
  proc: Bun.Subprocess<"ignore", "pipe", "inherit">;
  /** Our end of the stage's stdin: blocking writes (sys.writeAll), closed by the caller. */
  stdin: number;
  /** Our end of the stage's stdout: read it with sys.readChunks. */
  stdout: number;
}

type Stdio = [number | "ignore", number, number | "inherit"];

/** Start the stage as a child with the given stdio; the plan is fd 3. */
async function launch(plan: Plan, stdio: Stdio, stateDir: () => string) {
  const bytes = await stageBytes();
  const planFd = sys.memfd("bunker-plan", sys.MFD_CLOEXEC);
  const spawn = (stage: number | string) =>
    Bun.spawn([typeof stage === "number" ? "/proc/self/fd/4" : stage, "3"], {
      stdio: [...stdio, planFd, typeof stage === "number" ? stage : "ignore"],
      env: {},
    });
  try {
    sys.writeAll(planFd, plan.encode());
    let stage: number | undefined;
    try {
      stage = sealedStage(bytes);
      return spawn(stage);
    } catch (e) {
      if (!refused(e)) throw e;
    } finally {
      if (stage !== undefined) sys.close(stage);
    }
    // memfd exec refused: run a copy from the state directory, as execStage does
    const dir = stateDir();
    try {
      return spawn(stageFile(bytes, dir));
    } catch (e) {
      throw refused(e) ? noExec(dir) : e;
    }
  } finally {
    sys.close(planFd);
  }
}

/**
 * Run the stage as a child of this process, for plans that Bun feeds or
 * reads while they run (unpacking, packing, removing). Its stdin and stdout
 * are plain pipes this process writes and reads with blocking calls: for
 * bulk data, Bun's streams cost more than the work.
 */
export async function spawnStage(plan: Plan, stateDir: () => string = stateRoot): Promise<StageProcess> {
  const input = sys.pipe(1 << 20);
  const output = sys.pipe(1 << 20);
  try {
    const proc = await launch(plan, [input[0], output[1], "inherit"], stateDir);
    return { proc: proc as unknown as StageProcess["proc"], stdin: input[1], stdout: output[0] };
  } finally {
    for (const fd of [input[0], output[1]]) sys.close(fd);
  }
}

/**
 * Start a plan with OP_DETACH: the stage leaves for a session of its own
 * and outlives this process. It writes 'R' to its stdout once the command
 * runs; if it fails before, its stderr holds the message and its exit
 * status the code.
 */
export async function detachStage(plan: Plan, stateDir: string): Promise<{ ok: true } | { ok: false; message: string; code: number }> {
  const ready = sys.pipe();
  const errors = sys.pipe();
  let proc: Awaited<ReturnType<typeof launch>>;
  try {
    proc = await launch(plan, ["ignore", ready[1], errors[1]], () => stateDir);
  } finally {
    sys.close(ready[1]);
    sys.close(errors[1]);
  }
  // both are read to their end, and closed, by readFd
  const said = sys.readFd(ready[0], "the stage's answer", 16);
  const message = sys.readFd(errors[0], "the stage's messages", 64 << 10).trimEnd();
  if (said === "R") {
    proc.unref();
    return { ok: true };
  }
  return { ok: false, message: message.replace(/^bunker: /, ""), code: await proc.exited };
}

export async function execStage(plan: Plan, stateDir: string): Promise<never> {
  const bytes = await stageBytes();
  const planFd = sys.memfd("bunker-plan", 0); // no CLOEXEC: the stage reads it
  sys.writeAll(planFd, plan.encode());
  const argv = ["bunker-stage", String(planFd)];
  let stage: number | undefined;
  try {
    stage = sealedStage(bytes);
    sys.exec(stage, argv, []);
  } catch (e) {
    if (!refused(e)) throw e;
    if (stage !== undefined) sys.close(stage);
  }
  // memfd exec refused: run a copy from the state directory
  try {
    return sys.exec(stageFile(bytes, stateDir), argv, []);
  } catch (e) {
    throw refused(e) ? noExec(stateDir) : e;
  }
}

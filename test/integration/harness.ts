// Integration tests drive the real dist/bunker as an unprivileged user.
// Under root (as in CI) the harness creates two users: `bunkertest`, with
// subordinate id ranges, and `bunkertest1`, without any (the one-id path).
// The binary and root filesystems are copied into a world-readable
// temporary directory, since the checkout may sit where they cannot enter.
import { spawnSync } from "bun";
import { chmodSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = new URL("../..", import.meta.url).pathname;
export const asRoot = process.getuid!() === 0;

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  /** A root filesystem this user owns, so container root may write to it. */
  rootfs: string;
  subuid?: { start: number; count: number };
}

export interface Harness {
  dir: string;
  bin: string;
  /** The user with subordinate ranges (or the caller, when not root). */
  main: TestUser;
  /** A user without subordinate ranges (root runs only). */
  single?: TestUser;
}

function sh(cmd: string[], allowFail = false): string {
  const p = spawnSync(cmd, { stderr: "pipe" });
  if (p.exitCode !== 0 && !allowFail) {
    throw new Error(`${cmd.join(" ")} failed (${p.exitCode}): ${p.stderr.toString()}`);
  }
  return p.stdout.toString();
}

function passwd(name: string): { uid: number; gid: number; home: string } | undefined {
  const line = readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.startsWith(`${name}:`));
  if (!line) return undefined;
  const f = line.split(":");
  return { uid: Number(f[2]), gid: Number(f[3]), home: f[5]! };
}

function subRange(name: string, uid: number): { start: number; count: number } | undefined {
  for (const line of (existsSync("/etc/subuid") ? readFileSync("/etc/subuid", "utf8") : "").split("\n")) {
    const [who, start, count] = line.split(":");
    if (who === name || who === String(uid)) return { start: Number(start), count: Number(count) };
  }
  return undefined;
}

/** Remove a user's lines from /etc/subuid and /etc/subgid. */
function dropSubids(name: string, uid: number): void {
  for (const f of ["/etc/subuid", "/etc/subgid"]) {
    if (!existsSync(f)) continue;
    const kept = readFileSync(f, "utf8")
      .split("\n")
      .filter((l) => l && !l.startsWith(`${name}:`) && !l.startsWith(`${uid}:`));
    writeFileSync(f, kept.map((l) => `${l}\n`).join(""));
  }
}

function ensureUser(name: string, ranges: boolean): { uid: number; gid: number; home: string } {
  if (!passwd(name)) sh(["useradd", "--create-home", "--shell", "/bin/sh", name]);
  const pw = passwd(name)!;
  if (ranges && !subRange(name, pw.uid)) {
    // a range no other user of this machine has
    const start = 400000 + (pw.uid % 1000) * 65536;
    sh(["usermod", "--add-subuids", `${start}-${start + 65535}`, "--add-subgids", `${start}-${start + 65535}`, name]);
  }
  if (!ranges) dropSubids(name, pw.uid);
  return pw;
}

/** A copy of dist/rootfs for one user, with the test's helper programs. */
function makeRootfs(dir: string, owner?: { uid: number; gid: number }): string {
  const rootfs = join(dir, `rootfs-${owner?.uid ?? "self"}`);
  cpSync(join(ROOT, "dist/rootfs"), rootfs, { recursive: true, verbatimSymlinks: true });
  cpSync(join(dir, "fixtures"), join(rootfs, "usr/local/bin"), { recursive: true });
  if (owner) sh(["chown", "-R", "--no-dereference", `${owner.uid}:${owner.gid}`, rootfs]);
  return rootfs;
}

/** Static helpers from test/fixtures/*.c, copied into every test rootfs. */
function buildFixtures(dir: string): void {
  const out = join(dir, "fixtures");
  sh(["mkdir", "-p", out]);
  for (const src of ["abstract-connect", "udp-echo"]) {
    sh(["cc", "-static", "-Os", "-o", join(out, src), join(ROOT, "test/fixtures", `${src}.c`)]);
  }
}

let harness: Harness | undefined;

/** Remove the harness's directory: test/preload.ts runs it once every test file has run (bun test emits no "exit"). */
export function teardown(): void {
  if (!harness) return;
  try {
    rmSync(harness.dir, { recursive: true, force: true });
  } catch (e) {
    // not root: what containers wrote as subordinate ids is not the caller's to remove
    console.warn(`could not remove ${harness.dir}: ${(e as Error).message}`);
  }
  harness = undefined;
}

export function setup(): Harness {
  if (harness) return harness;
  if (!existsSync(join(ROOT, "dist/bunker")) || !existsSync(join(ROOT, "dist/rootfs"))) {
    throw new Error("dist/bunker is missing: run 'npm run build' (npm test does)");
  }
  const dir = mkdtempSync("/tmp/bunker-test-");
  chmodSync(dir, 0o755);
  const bin = join(dir, "bunker");
  cpSync(join(ROOT, "dist/bunker"), bin);
  chmodSync(bin, 0o755);
  buildFixtures(dir);

  if (asRoot) {
    const m = ensureUser("bunkertest", true);
    const s = ensureUser("bunkertest1", false);
    harness = {
      dir,
      bin,
      main: { name: "bunkertest", ...m, rootfs: makeRootfs(dir, m), subuid: subRange("bunkertest", m.uid) },
      single: { name: "bunkertest1", ...s, rootfs: makeRootfs(dir, s) },
    };
  } else {
    const uid = process.getuid!();
    // USER may be unset (env -i, cron): the passwd entry of this uid names the user, as subordinate ranges are listed by name
    const name = process.env.USER ?? readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.split(":")[2] === String(uid))?.split(":")[0] ?? String(uid);
    harness = {
      dir,
      bin,
      main: {
        name,
        uid,
        gid: process.getgid!(),
        home: process.env.HOME ?? "/",
        rootfs: makeRootfs(dir),
        subuid: subRange(name, uid),
      },
    };
  }
  return harness;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOpts {
  user?: TestUser;
  stdin?: string;
  env?: Record<string, string>;
  timeout?: number;
}

/** The command line that runs `cmd` as the test user with a clean environment. */
export function asUser(cmd: string[], opts: { user?: TestUser; env?: Record<string, string> } = {}): string[] {
  const h = setup();
  const u = opts.user ?? h.main;
  const env = Object.entries({ HOME: u.home, USER: u.name, PATH: "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", ...opts.env }).map(
    ([k, v]) => `${k}=${v}`,
  );
  if (!asRoot) return ["env", "-i", ...env, ...cmd];
  return ["setpriv", `--reuid=${u.uid}`, `--regid=${u.gid}`, "--init-groups", "--", "env", "-i", ...env, ...cmd];
}

/** Run dist/bunker with args as the test user. */
export function bunker(args: string[], opts: RunOpts = {}): RunResult {
  const h = setup();
  const p = spawnSync(asUser([h.bin, ...args], opts), {
    stdin: opts.stdin === undefined ? "ignore" : new TextEncoder().encode(opts.stdin),
    stdout: "pipe",
    stderr: "pipe",
    timeout: opts.timeout ?? 30000,
  });
  return { code: p.exitCode ?? 128 + (p.signalCode ? 9 : 0), stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

/** `bunker run ROOTFS sh -c SCRIPT` with extra run options before the rootfs. */
export function runSh(script: string, runOpts: string[] = [], opts: RunOpts = {}): RunResult {
  const u = opts.user ?? setup().main;
  return bunker(["run", ...runOpts, u.rootfs, "/bin/sh", "-c", script], opts);
}

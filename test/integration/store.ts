// Helpers for tests that use an image store: a private store per test, and archives made with GNU tar.
import { expect } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { asRoot, bunker, type RunOpts, setup } from "./harness.ts";

const h = setup();

/** A fresh, private store for a test user: an XDG_DATA_HOME of its own, and an
 * XDG_RUNTIME_DIR (mode 0700), so that other tests' containers stay out of its `ps -a`. */
export function freshStore(user = h.main): { env: Record<string, string>; dir: string } {
  const dir = mkdtempSync(join(h.dir, "data-"));
  const run = mkdtempSync(join(h.dir, "run-"));
  chmodSync(run, 0o700);
  if (asRoot) Bun.spawnSync(["chown", `${user.uid}:${user.gid}`, dir, run]);
  return { env: { XDG_DATA_HOME: dir, XDG_RUNTIME_DIR: run }, dir };
}

/** A world-readable work directory for building archives. */
export function workdir(): string {
  const d = mkdtempSync(join(h.dir, "work-"));
  chmodSync(d, 0o755);
  return d;
}

export function sh(cmd: string): void {
  const p = Bun.spawnSync(["sh", "-c", cmd], { stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${cmd}: ${p.stderr.toString()}`);
}

/** A copy of the test rootfs owned by root (when we are), with extra shell steps run in it. */
export function rootfsDir(w: string, extra = ""): string {
  const src = join(w, "rootfs");
  sh(`cp -a ${h.main.rootfs} ${src}${asRoot ? ` && chown -R 0:0 ${src}` : ""}${extra ? ` && cd ${src} && ${extra}` : ""}`);
  return src;
}

/** A tar of a directory, as `docker export` writes one. */
export function tarOf(dir: string, out: string): string {
  sh(`tar --numeric-owner -C ${dir} -cf ${out} . && chmod 644 ${out}`);
  return out;
}

export function inStore(env: Record<string, string>, args: string[], opts: RunOpts = {}) {
  return bunker(args, { ...opts, env: { ...env, ...opts.env } });
}

/** Nothing visible, and no staging debris, after a refused import. */
export function noDebris(dir: string): void {
  const store = join(dir, "bunker");
  expect(readdirSync(join(store, "tmp"))).toEqual([]);
  expect(readdirSync(join(store, "layers"))).toEqual([]);
  const index = existsSync(join(store, "images.json")) ? JSON.parse(readFileSync(join(store, "images.json"), "utf8")) : { images: [] };
  expect(index.images).toEqual([]);
}


/** Whether pid has a file open in dir (an unnamed O_TMPFILE one too): an export is writing there. */
export function writingIn(pid: number, dir: string): boolean {
  return hasOpen(pid, (path) => path.startsWith(`${dir}/`));
}

/** Whether process pid has a file open whose path matches. */
export function hasOpen(pid: number | string, match: (path: string) => boolean): boolean {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return match(readlinkSync(`/proc/${pid}/fd/${fd}`));
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

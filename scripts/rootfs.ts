// A small root filesystem made only from what this host has: busybox with
// its applet links when it is installed (static, or with its libraries),
// otherwise a handful of the host's own programs and their libraries.
import { chmodSync, copyFileSync, existsSync, mkdirSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

const FALLBACK = ["sh", "ls", "cat", "echo", "id", "hostname", "env", "sleep", "true", "false", "ps", "mkdir", "touch", "rm", "stat", "pwd", "uname", "readlink", "kill", "head", "grep"];

function which(name: string): string | undefined {
  for (const d of ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]) {
    const p = join(d, name);
    try {
      if (statSync(p).isFile()) return p;
    } catch {}
  }
  return undefined;
}

/** Shared libraries a dynamic program needs, from ldd (none for a static one). */
function libraries(prog: string): string[] {
  const p = Bun.spawnSync(["ldd", prog], { stderr: "ignore" });
  const out = p.stdout.toString();
  const libs: string[] = [];
  for (const m of out.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)) libs.push(m[1]!);
  return libs;
}

function copyIn(root: string, hostPath: string, as = hostPath): void {
  const dest = join(root, as);
  mkdirSync(dirname(dest), { recursive: true });
  copyFileSync(realpathSync(hostPath), dest);
  chmodSync(dest, 0o755);
}

function skeleton(root: string): void {
  rmSync(root, { recursive: true, force: true });
  for (const d of ["bin", "etc", "proc", "sys", "dev", "tmp", "root", "home", "var", "usr"]) mkdirSync(join(root, d), { recursive: true });
  chmodSync(join(root, "tmp"), 0o1777);
  writeFileSync(join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
  writeFileSync(join(root, "etc/group"), "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n");
}

/** Build the rootfs at `root`; returns what it was made from. */
export function makeRootfs(root: string): string {
  skeleton(root);
  const busybox = which("busybox");
  const progs: string[] = [];
  if (busybox) {
    copyIn(root, busybox, "/bin/busybox");
    const list = Bun.spawnSync([busybox, "--list"]).stdout.toString().split("\n").filter(Boolean);
    for (const applet of list) {
      if (applet !== "busybox" && !existsSync(join(root, "bin", applet))) symlinkSync("busybox", join(root, "bin", applet));
    }
    progs.push(busybox);
  } else {
    for (const name of FALLBACK) {
      const p = which(name);
      if (!p) continue;
      copyIn(root, p, `/bin/${name}`);
      progs.push(p);
    }
  }
  for (const lib of new Set(progs.flatMap(libraries))) copyIn(root, lib);
  return busybox ? `${busybox}${libraries(busybox).length ? " and its libraries" : " (static)"}` : "the host's programs and their libraries";
}

if (import.meta.main) {
  const dest = process.argv[2];
  if (!dest) {
    console.error("usage: bun scripts/rootfs.ts DIR");
    process.exit(2);
  }
  console.log(`rootfs from ${makeRootfs(dest)}`);
}

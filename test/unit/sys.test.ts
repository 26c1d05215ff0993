// The libc seam on real files: reads inside a root filesystem never leave it.
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { close, pipe, readdir, readInRoot, startWriteback, stat, writeFile } from "../../src/linux/sys.ts";

const dir = mkdtempSync("/tmp/bunker-sys-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const root = join(dir, "root");
mkdirSync(join(root, "etc"), { recursive: true });
writeFileSync(join(root, "etc/passwd"), "inside\n");
writeFileSync(join(dir, "secret"), "outside\n");

test("absolute links, .. and chains resolve inside the root", () => {
  symlinkSync("/etc/passwd", join(root, "abs"));
  symlinkSync("../../../../etc/passwd", join(root, "up"));
  symlinkSync("abs", join(root, "chain"));
  symlinkSync("../secret", join(root, "out"));
  expect(readInRoot(root, "/etc/passwd")).toBe("inside\n");
  expect(readInRoot(root, "/abs")).toBe("inside\n");
  expect(readInRoot(root, "/up")).toBe("inside\n");
  expect(readInRoot(root, "/chain")).toBe("inside\n");
  expect(readInRoot(root, "/../../etc/./passwd")).toBe("inside\n");
  expect(readInRoot(root, "/out")).toBeUndefined(); // "../secret" is /secret inside, which is missing
});

test("a FIFO, a directory, a loop and a file over the limit are not read", () => {
  Bun.spawnSync(["mkfifo", join(root, "etc/fifo")]);
  symlinkSync("loop", join(root, "loop"));
  writeFileSync(join(root, "big"), "x".repeat(100));
  expect(readInRoot(root, "/etc/fifo")).toBeUndefined(); // would block forever if opened blocking
  expect(readInRoot(root, "/etc")).toBeUndefined();
  expect(readInRoot(root, "/loop")).toBeUndefined();
  expect(readInRoot(root, "/big", 99)).toBeUndefined();
  expect(readInRoot(root, "/big", 100)).toHaveLength(100);
  expect(readInRoot(join(dir, "nope"), "/etc/passwd")).toBeUndefined();
});

test("writeFile sets the mode whatever the umask, and never follows a link", () => {
  const old = process.umask(0o077);
  try {
    writeFile(join(dir, "w"), "x", 0o644);
    expect(stat(join(dir, "w"))!.mode).toBe(0o644);
  } finally {
    process.umask(old);
  }
  symlinkSync(join(dir, "secret"), join(dir, "link"));
  expect(() => writeFile(join(dir, "link"), "y", 0o644, true)).toThrow("too many levels of symbolic links");
});

test("readdir lists names", () => {
  expect(readdir(join(root, "etc")).sort()).toEqual(["fifo", "passwd"]);
});

test("the writeback hint is no error where it does not apply", () => {
  const [r, w] = pipe();
  try {
    expect(() => startWriteback(w, 0, 4096)).not.toThrow(); // ESPIPE
    expect(() => startWriteback(-1, 0, 4096)).not.toThrow(); // EBADF
  } finally {
    close(r);
    close(w);
  }
});

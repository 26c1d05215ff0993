import { expect, test } from "bun:test";

test("tsc --noEmit finds no type errors", () => {
  const root = new URL("../..", import.meta.url).pathname;
  const p = Bun.spawnSync([`${root}/node_modules/.bin/tsc`, "--noEmit", "-p", root], { stdout: "pipe", stderr: "pipe" });
  expect(p.stdout.toString() + p.stderr.toString()).toBe("");
  expect(p.exitCode).toBe(0);
}, 120000);

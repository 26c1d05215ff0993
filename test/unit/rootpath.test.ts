import { expect, test } from "bun:test";
import { type FsProbe, resolveInRoot } from "../../src/linux/rootpath.ts";

/** A fake tree: paths to "dir" or a symlink target. */
function fake(tree: Record<string, string>): FsProbe {
  return {
    kind: (p) => (p in tree ? (tree[p] === "dir" ? "other" : "link") : undefined),
    readlink: (p) => tree[p]!,
  };
}

const fs = fake({
  "/r/etc": "dir",
  "/r/etc/passwd": "dir",
  "/r/abs": "/etc",
  "/r/up": "../../../../etc",
  "/r/chain1": "chain2",
  "/r/chain2": "/abs/passwd",
  "/r/loop": "loop",
  "/r/data": "/../../tmp/x",
});

test("absolute links, .. and chains all stay inside the root", () => {
  expect(resolveInRoot("/r", "/etc/passwd", fs)).toBe("/r/etc/passwd");
  expect(resolveInRoot("/r", "/abs/passwd", fs)).toBe("/r/etc/passwd");
  expect(resolveInRoot("/r", "/up/passwd", fs)).toBe("/r/etc/passwd");
  expect(resolveInRoot("/r", "/../../etc/./passwd", fs)).toBe("/r/etc/passwd");
  expect(resolveInRoot("/r", "/chain1", fs)).toBe("/r/etc/passwd");
});

test("a missing component gives undefined, a loop an error", () => {
  expect(resolveInRoot("/r", "/data", fs)).toBeUndefined();
  expect(resolveInRoot("/r", "/nope/x", fs)).toBeUndefined();
  expect(() => resolveInRoot("/r", "/loop", fs)).toThrow("too many levels of symbolic links");
});

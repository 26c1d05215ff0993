// The image store's pure parts: what a container's removal takes, in which order.
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Store } from "../../src/image/store.ts";

test("a removal at exit takes a container's record before its files: an export reading it sees it gone, a removal cut short leaves what the sweep clears", () => {
  const dir = mkdtempSync(join(tmpdir(), "bunker-store-"));
  try {
    const root = join(dir, "bunker");
    expect(new Store(root).containerFiles("abc")).toEqual([`${root}/containers/abc/container.json`, `${root}/containers/abc`]);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

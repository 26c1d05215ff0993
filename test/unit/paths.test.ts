import { expect, test } from "bun:test";
import { join, resolve } from "../../src/paths.ts";

test("join normalises like node:path", () => {
  expect(join("/a", "b", "../c")).toBe("/a/c");
  expect(join("/a/", "/b/")).toBe("/a/b");
  expect(join("/", "..")).toBe("/");
  expect(join("a", "..", "..", "b")).toBe("../b");
  expect(join("a", ".")).toBe("a");
});

test("resolve makes paths absolute against a base", () => {
  expect(resolve("x", "/base")).toBe("/base/x");
  expect(resolve("../x", "/base/dir")).toBe("/base/x");
  expect(resolve("/abs/../y", "/base")).toBe("/y");
});

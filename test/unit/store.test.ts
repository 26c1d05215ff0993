// The image store's and import's pure parts: what a container's removal takes, in which order; the
// x86-64 level a CPU runs, by which import picks an image's amd64 variant.
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { amd64Level } from "../../src/image/import.ts";
import { Store, validImageName } from "../../src/image/store.ts";

test("a removal at exit takes a container's record before its files: an export reading it sees it gone, a removal cut short leaves what the sweep clears", () => {
  const dir = mkdtempSync(join(tmpdir(), "bunker-store-"));
  try {
    const root = join(dir, "bunker");
    expect(new Store(root).containerFiles("abc")).toEqual([`${root}/containers/abc/container.json`, `${root}/containers/abc`]);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("the x86-64 level of a CPU, from its /proc/cpuinfo flags: each level needs all of its own and those below", () => {
  const v1 = "fpu cmov cx8 mmx sse sse2 lm";
  const v2 = `${v1} cx16 lahf_lm popcnt sse4_1 sse4_2 ssse3`;
  const v3 = `${v2} avx avx2 bmi1 bmi2 f16c fma abm movbe xsave`;
  const v4 = `${v3} avx512f avx512bw avx512cd avx512dq avx512vl`;
  expect([v1, v2, v3, v4].map(amd64Level)).toEqual([1, 2, 3, 4]);
  expect(amd64Level(v2.replace("popcnt", ""))).toBe(1);
  expect(amd64Level(`${v2} avx512f avx512bw avx512cd avx512dq avx512vl`)).toBe(2); // v4's flags without v3's
  expect(amd64Level(v4.replace("fma", "  "))).toBe(2);
  expect(amd64Level(v4.replace("avx512vl", "avx512vbmi"))).toBe(3);
});

test("an image name is Docker's reference: lower-case parts joined by one separator, an optional HOST[:PORT]/ and :TAG", () => {
  for (const ok of ["a", "app:latest", "test/rootfs:1", "a_b", "a__b", "a--b", "a.b/c-d", "localhost:5000/app:1", "my.registry.io/x/y:v1.2", "Host.Example/x"]) expect({ ok, valid: validImageName(ok) }).toEqual({ ok, valid: true });
  for (const bad of ["", "foo/", "/foo", "foo//bar", "foo..bar", "a___b", "-a", "a-", "UPPER", "Bad Name", "x:y:z", "a:", "a:-b", "a@sha256:00", `a:${"t".repeat(129)}`]) expect({ bad, valid: validImageName(bad) }).toEqual({ bad, valid: false });
});

import { expect, test } from "bun:test";
import { MS, parseMountOptions } from "../../src/linux/mountopts.ts";

test("flags, data and propagation are split as mount(2) wants them", () => {
  const o = parseMountOptions(["nosuid", "strictatime", "mode=755", "size=65536k", "rprivate"]);
  expect(o.flags).toBe(MS.NOSUID | MS.STRICTATIME);
  expect(o.data).toBe("mode=755,size=65536k");
  expect(o.propagation).toBe(MS.PRIVATE | MS.REC);
});

test("later options override earlier ones; rbind is a recursive bind", () => {
  expect(parseMountOptions(["ro", "rw"]).flags).toBe(0);
  expect(parseMountOptions(["rbind", "ro"]).flags).toBe(MS.BIND | MS.REC | MS.RDONLY);
  expect(parseMountOptions(["rro"])).toMatchObject({ recursiveReadonly: true, flags: MS.RDONLY });
  expect(parseMountOptions(["z", "Z", "nocopy"]).data).toBe("");
});

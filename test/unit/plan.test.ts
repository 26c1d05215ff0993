import { expect, test } from "bun:test";
import { decodePlan, Op, OpFlag, Plan } from "../../src/linux/plan.ts";

test("a plan round-trips through the binary form the C stage reads", () => {
  const plan = new Plan()
    .add(Op.CLONE, "create namespaces", { ints: [0x10000000] })
    .add(Op.MOUNT, "mount proc on /proc", { flags: OpFlag.OPTIONAL, strs: ["proc", "/proc", "proc", ""], ints: [14, 1, -1] })
    .add(Op.EXEC, 'exec "sh"', { ints: [2n, 1n], strs: ["/bin", "sh", "-c", "PATH=/bin"] })
    .add(Op.RELEASE, "ünïcode ✓ desc\thint");
  const ops = decodePlan(plan.encode());
  expect(ops).toEqual(plan.ops);
  expect(ops[1]!.ints[2]).toBe(-1n);
});

test("the header carries the magic and the op count; strings are NUL-terminated", () => {
  const bytes = new Plan().add(Op.SETHOSTNAME, "set hostname", { strs: ["web"] }).encode();
  const dv = new DataView(bytes.buffer);
  expect(dv.getUint32(0, true)).toBe(0x314b4e42);
  expect(dv.getUint32(4, true)).toBe(1);
  // header 12, op head 8, then "web" as u32 length + bytes + NUL
  expect(dv.getUint32(20, true)).toBe(3);
  expect(bytes[24 + 3]).toBe(0);
});

test("a string with a NUL byte is refused", () => {
  expect(() => new Plan().add(Op.SETHOSTNAME, "x", { strs: ["a\0b"] })).toThrow("NUL byte");
});

test("describe() lists each op with who runs it", () => {
  const text = new Plan().add(Op.CLONE, "create namespaces", { ints: [1] }).add(Op.PIVOT, "pivot_root into /r", { strs: ["/r"] }).describe();
  expect(text).toBe('  0 stage CLONE 1  # create namespaces\n  1 child PIVOT "/r"  # pivot_root into /r');
});

test("a corrupt plan is refused by the decoder", () => {
  const bytes = new Plan().add(Op.CLONE, "x").encode();
  expect(() => decodePlan(bytes.subarray(0, bytes.length - 1))).toThrow();
  const bad = bytes.slice();
  bad[0] = 0;
  expect(() => decodePlan(bad)).toThrow("magic");
});

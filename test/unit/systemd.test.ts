// The D-Bus codec that asks systemd's user manager for scopes (src/runtime/systemd.ts).
import { expect, test } from "bun:test";
import { decodeMessage, encodeCall, MsgType, messageLength, Reader, splitType, Writer } from "../../src/runtime/systemd.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

test("signatures split into complete types", () => {
  expect(splitType("ssa(sv)a(sa(sv))")).toEqual(["s", "sa(sv)a(sa(sv))"]);
  expect(splitType("a(sv)a(sa(sv))")).toEqual(["a(sv)", "a(sa(sv))"]);
  expect(splitType("a(sa(sv))")).toEqual(["a(sa(sv))", ""]);
  expect(() => splitType("(s")).toThrow();
});

test("a method call is laid out as the D-Bus specification says", () => {
  // worked by hand: 16-byte fixed header; fields at 8-byte boundaries; body after padding to 8
  const m = encodeCall(1, { path: "/", iface: "a.b", member: "C", signature: "s", body: ["x"] });
  expect(hex(m)).toBe(
    [
      "6c010001", "06000000", "01000000", "37000000", // 'l', call, flags 0, v1; body 6; serial 1; fields 55 bytes
      "01016f00", "01000000", "2f000000", "00000000", // PATH: o "/"
      "02017300", "03000000", "612e6200", "00000000", // INTERFACE: s "a.b"
      "03017300", "01000000", "43000000", "00000000", // MEMBER: s "C"
      "08016700", "017300", "00", // SIGNATURE: g "s"; pad to 72
      "01000000", "7800", // body: s "x"
    ].join(""),
  );
  expect(m.length).toBe(78);
  expect(messageLength(m)).toBe(78);
  expect(messageLength(m.subarray(0, 15))).toBeUndefined();
});

test("StartTransientUnit's arguments round-trip", () => {
  const props = [
    ["Description", { sig: "s", value: "bunker container 0123" }],
    ["PIDs", { sig: "au", value: [4242] }],
    ["Delegate", { sig: "b", value: true }],
  ];
  const m = encodeCall(7, {
    path: "/org/freedesktop/systemd1",
    iface: "org.freedesktop.systemd1.Manager",
    member: "StartTransientUnit",
    destination: "org.freedesktop.systemd1",
    signature: "ssa(sv)a(sa(sv))",
    body: ["bunker-x.scope", "fail", props, []],
  });
  const d = decodeMessage(m);
  expect(d).toMatchObject({ type: MsgType.CALL, serial: 7, path: "/org/freedesktop/systemd1", member: "StartTransientUnit", signature: "ssa(sv)a(sa(sv))" });
  expect(d.body()).toEqual(["bunker-x.scope", "fail", props, []]);
});

test("values keep their alignment inside arrays and structs", () => {
  const w = new Writer();
  w.write("y", 9);
  w.write("a(yu)", [[1, 2], [3, 4]]);
  w.write("v", { sig: "ay", value: [5, 6] });
  const r = new Reader(w.buf.subarray(0, w.len));
  expect(r.readAll("ya(yu)v")).toEqual([9, [[1, 2], [3, 4]], { sig: "ay", value: [5, 6] }]);
  // the array's length counts from after the padding to its first element
  expect(new DataView(w.buf.buffer).getUint32(4, true)).toBe(16);
});

test("dict entries, as in the manager's PropertiesChanged signals, are read", () => {
  expect(splitType("a{sv}as")).toEqual(["a{sv}", "as"]);
  const w = new Writer();
  w.write("s", "org.freedesktop.systemd1.Unit");
  w.write("a(sv)", [["ActiveState", { sig: "s", value: "active" }]]); // a dict entry is laid out as a struct
  w.write("as", []);
  expect(new Reader(w.buf.subarray(0, w.len)).readAll("sa{sv}as")).toEqual(["org.freedesktop.systemd1.Unit", [["ActiveState", { sig: "s", value: "active" }]], []]);
});

test("the fixed-size types a signal may carry are read at their alignment", () => {
  const w = new Writer();
  w.write("y", 1);
  w.align(8);
  w.bytes(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])); // t: 2^64-1, x: -1
  w.bytes(new Uint8Array([0xfe, 0xff, 0, 0])); // n: -2
  expect(new Reader(w.buf.subarray(0, w.len)).readAll("yxn")).toEqual([1, -1, -2]);
  expect(new Reader(w.buf.subarray(0, w.len)).readAll("yt")).toEqual([1, 2 ** 64]);
});

test("a truncated message is refused, not read past its end", () => {
  const m = encodeCall(1, { path: "/", iface: "a.b", member: "C", signature: "s", body: ["x"] });
  expect(() => decodeMessage(m.subarray(0, 74)).body()).toThrow(/truncated/);
  expect(() => decodeMessage(m.subarray(0, 30))).toThrow(/truncated/);
});

import { expect, test } from "bun:test";
import { decodeName, encodeName, hasEscapes, nameLength } from "../../src/image/names.ts";

const bytes = (...b: number[]) => Uint8Array.from(b);
const utf8 = (s: string) => new TextEncoder().encode(s);

test("valid UTF-8 decodes as TextDecoder does, a leading U+FEFF included, and has no escapes", () => {
  for (const s of ["", "etc/passwd", "ünïcödé ✓", "😀/𝄞", "\uFEFFbom", "a\u0000b"]) {
    expect(decodeName(utf8(s))).toBe(s);
    expect(encodeName(s)).toEqual(utf8(s));
    expect(hasEscapes(s)).toBe(false);
    expect(nameLength(s)).toBe(utf8(s).length);
  }
});

test("bytes that are not UTF-8 become lone U+DC80-U+DCFF and come back as the same bytes", () => {
  const latin1 = bytes(0x63, 0x61, 0x66, 0xe9); // "café" in Latin-1
  expect(decodeName(latin1)).toBe("caf\udce9");
  expect(encodeName("caf\udce9")).toEqual(latin1);
  expect(hasEscapes("caf\udce9")).toBe(true);
  expect(nameLength("caf\udce9")).toBe(4);
  // what a lossy decoder made one name are two here
  expect(decodeName(utf8("caf\ufffd"))).toBe("caf\ufffd");
  expect(decodeName(latin1)).not.toBe(decodeName(utf8("caf\ufffd")));
  // overlong forms, encoded surrogates, past U+10FFFF, cut sequences, stray continuation bytes: each byte escaped
  for (const bad of [[0xc0, 0xaf], [0xe0, 0x80, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf0, 0x9f, 0x98], [0x80], [0xff, 0xfe]]) {
    const name = decodeName(bytes(0x61, ...bad, 0x62));
    expect(name).toBe(`a${bad.map((b) => String.fromCharCode(0xdc00 + b)).join("")}b`);
    expect(encodeName(name)).toEqual(bytes(0x61, ...bad, 0x62));
  }
  // a valid sequence next to an invalid byte is kept whole
  expect(decodeName(bytes(0xc3, 0xa9, 0xe9, 0xf0, 0x9f, 0x98, 0x80))).toBe("é\udce9😀");
});

test("a surrogate pair whose low half is in U+DC80-U+DCFF is a character, not an escape", () => {
  const s = "\uD800\uDC80"; // U+10080
  expect(hasEscapes(s)).toBe(false);
  expect(encodeName(s)).toEqual(utf8(s));
  expect(decodeName(utf8(s))).toBe(s);
});

test("every byte string round-trips, and different ones never decode alike", () => {
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  const seen = new Map<string, string>();
  for (let i = 0; i < 20000; i++) {
    // mostly bytes that begin or continue UTF-8 sequences, so that valid and invalid ones mix
    const b = Uint8Array.from({ length: 1 + (rand() % 12) }, () => [0x61, 0x80, 0xbf, 0xc3, 0xe2, 0xed, 0xf0, 0xf4, 0x9f, 0xa0, 0xff][rand() % 11]!);
    const name = decodeName(b);
    expect(encodeName(name)).toEqual(b);
    expect(nameLength(name)).toBe(b.length);
    const key = Buffer.from(b).toString("hex");
    expect(seen.get(name) ?? key).toBe(key);
    seen.set(name, key);
  }
});

test("a valid character next to an invalid byte decodes as it does alone (as Python's surrogateescape), at every length's bounds", () => {
  for (const cp of [0x7f, 0x80, 0x7ff, 0x800, 0xfff, 0x1000, 0xcfff, 0xd000, 0xd7ff, 0xe000, 0xefff, 0xf000, 0xfeff, 0xfffd, 0xffff, 0x10000, 0x3ffff, 0x40000, 0xfffff, 0x100000, 0x10ffff]) {
    const ch = String.fromCodePoint(cp);
    expect(decodeName(Uint8Array.from([0xff, ...utf8(ch), 0xff]))).toBe(`\udcff${ch}\udcff`);
  }
});

test("a lone surrogate that is no escape (U+DC00-U+DC7F, or a high one) encodes as TextEncoder does: never as a byte below 0x80", () => {
  for (const s of ["\udc00", "a\udc2fb", "\ud800", "\udc7f"]) {
    expect(hasEscapes(s)).toBe(false);
    expect(encodeName(s)).toEqual(utf8(s));
  }
});

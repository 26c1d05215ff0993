// File names are bytes; JavaScript strings are UTF-16. A name that is valid
// UTF-8, as nearly all are, decodes as usual. A byte that is not part of
// valid UTF-8 (a Latin-1 name, say) becomes a lone surrogate U+DC80-U+DCFF
// (Python's "surrogateescape"), which valid UTF-8 never yields, and turns
// back into that byte when the name is encoded. So every name round-trips
// exactly, and no two names become one (a lossy decoder made both "caf\xe9"
// and "caf\xef\xbf\xbd" into "caf\ufffd").

const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }); // a name may begin with U+FEFF
const enc = new TextEncoder();

/** A name's bytes as a string (lossless: see above). */
export function decodeName(b: Uint8Array): string {
  try {
    return strict.decode(b);
  } catch {
    return escaped(b);
  }
}

/** How many bytes from i form one valid UTF-8 sequence: 1 to 4, or 0 when b[i] does not begin one. */
function sequence(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < b.length && b[i + k]! >= lo && b[i + k]! <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    // no overlong forms (E0 80-9F), no UTF-16 surrogates (ED A0-BF)
    const ok = c === 0xe0 ? cont(1, 0xa0) : c === 0xed ? cont(1, 0x80, 0x9f) : cont(1);
    return ok && cont(2) ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    // no overlong forms (F0 80-8F), nothing past U+10FFFF (F4 90-BF)
    const ok = c === 0xf0 ? cont(1, 0x90) : c === 0xf4 ? cont(1, 0x80, 0x8f) : cont(1);
    return ok && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

function escaped(b: Uint8Array): string {
  let out = "";
  let run = 0; // start of the valid run at hand
  for (let i = 0; i < b.length; ) {
    const n = sequence(b, i);
    if (n) {
      i += n;
      continue;
    }
    if (run < i) out += strict.decode(b.subarray(run, i));
    out += String.fromCharCode(0xdc00 + b[i]!);
    run = ++i;
  }
  return run < b.length ? out + strict.decode(b.subarray(run)) : out;
}

/** A U+DC80-U+DCFF that is not the low half of a surrogate pair: an escaped byte. */
const ESCAPE = /(?<![\uD800-\uDBFF])[\uDC80-\uDCFF]/;
const ESCAPES = new RegExp(ESCAPE.source, "g");

/** A name's bytes from its string: decodeName's inverse. */
export function encodeName(s: string): Uint8Array {
  if (!ESCAPE.test(s)) return enc.encode(s);
  const parts: Uint8Array[] = [];
  let last = 0;
  for (const m of s.matchAll(ESCAPES)) {
    parts.push(enc.encode(s.slice(last, m.index)), Uint8Array.of(m[0].charCodeAt(0) - 0xdc00));
    last = m.index + 1;
  }
  parts.push(enc.encode(s.slice(last)));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((off, p) => (out.set(p, off), off + p.length), 0);
  return out;
}

/** The name holds bytes that are not UTF-8. */
export function hasEscapes(s: string): boolean {
  return ESCAPE.test(s);
}

/** The length of a name in bytes. */
export function nameLength(s: string): number {
  return encodeName(s).length;
}

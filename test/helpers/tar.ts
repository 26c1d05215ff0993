// Tar archives of any content, hostile ones included, made with bunker's own tar writer.
import { encodeHeader, END_OF_ARCHIVE, padding, type TarHeader } from "../../src/image/tar.ts";

const enc = new TextEncoder();
const h = (over: Partial<TarHeader>): TarHeader => ({ type: "file", path: "f", mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 1, linkname: "", ...over });

/** A tar of entries: [header, content?]. */
export function tarOf(entries: [Partial<TarHeader>, string?][]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [over, content] of entries) {
    const data = content === undefined ? undefined : enc.encode(content);
    parts.push(encodeHeader(h({ ...over, size: data?.length ?? 0 })));
    if (data) parts.push(data, padding(data.length));
  }
  parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}


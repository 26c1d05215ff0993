// Tar archives of any content, hostile ones included, made with bunker's own tar writer.
import { encodeHeader, END_OF_ARCHIVE, padding, type TarHeader } from "../../src/image/tar.ts";

const enc = new TextEncoder();

/** A regular file's header, but for what is given. */
export const header = (over: Partial<TarHeader>): TarHeader => ({ type: "file", path: "f", mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 1700000000, linkname: "", ...over });

/** A tar of entries as they are: [header, data?]. */
export function archive(entries: [TarHeader, Uint8Array?][]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [hd, data] of entries) {
    parts.push(encodeHeader(hd));
    if (data) parts.push(data, padding(data.length));
  }
  parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}

/** A tar of entries: [header fields, text content?], each sized to its content. */
export function tarOf(entries: [Partial<TarHeader>, string?][]): Uint8Array {
  return archive(
    entries.map(([over, content]) => {
      const data = content === undefined ? undefined : enc.encode(content);
      return [header({ mtime: 1, ...over, size: data?.length ?? 0 }), data];
    }),
  );
}

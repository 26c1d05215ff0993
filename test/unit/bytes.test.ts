// ByteReader over a source that reuses its buffers, as decompress does: a
// record that spans several chunks must come out whole.
import { expect, test } from "bun:test";
import { ByteReader, TruncatedError } from "../../src/image/bytes.ts";
import { reusing } from "../helpers/chunks.ts";

const data = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) % 251);

test("a record spanning many reused chunks comes out whole, and so do the parts around it", async () => {
  const r = new ByteReader(reusing(data, 16));
  expect(await r.readExact(10)).toEqual(data.subarray(0, 10));
  expect(await r.readExact(500)).toEqual(data.subarray(10, 510)); // 32 chunks
  const rest: number[] = [];
  for await (const c of r.stream(490)) rest.push(...c);
  expect(Uint8Array.from(rest)).toEqual(data.subarray(510));
  expect(await r.readExact(1)).toBeUndefined();
  expect(r.position).toBe(1000);
});

test("a stream that ends inside a record is truncated; one that ends between records is not", async () => {
  const r = new ByteReader(reusing(data, 64));
  expect(await r.readExact(1000)).toEqual(data);
  expect(await r.readExact(512)).toBeUndefined();
  const short = new ByteReader(reusing(data.subarray(0, 100), 64));
  await expect(short.readExact(512)).rejects.toThrow(new TruncatedError("the stream ends in the middle of a record (100 of 512 bytes)"));
});

test("readNow and skipNow take from the chunk at hand only, and read nothing when it falls short", async () => {
  const r = new ByteReader(reusing(data, 64));
  expect(r.peekNow()).toBeUndefined(); // nothing read in yet
  expect(r.readNow(1)).toBeUndefined();
  expect(r.readNow(0)).toEqual(new Uint8Array(0));
  expect(await r.readExact(10)).toEqual(data.subarray(0, 10));
  expect(r.peekNow()).toEqual(data.subarray(10, 64));
  expect(r.readNow(55)).toBeUndefined(); // 54 left in this chunk
  expect(r.skipNow(55)).toBe(false);
  expect(r.position).toBe(10);
  expect(r.readNow(20)).toEqual(data.subarray(10, 30));
  expect(r.skipNow(34)).toBe(true);
  expect(r.position).toBe(64);
  expect(r.peekNow()).toBeUndefined(); // the chunk is used up: the next is read only when asked for
  expect(await r.readExact(1)).toEqual(data.subarray(64, 65));
});

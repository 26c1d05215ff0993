import { expect, test } from "bun:test";
import { checkMaps, chooseMaps, formatMap, isSelfMap, mapsContain, newidmapArgs, parseSubids, rangeMaps } from "../../src/linux/idmap.ts";

const subuid = "# comment\nalice:100000:65536\nbob:165536:65536\n1000:300000:10\nalice:500000:5\nbad:line\ncarol:x:1\n";

test("parseSubids finds a user's ranges by name or by uid", () => {
  expect(parseSubids(subuid, "alice", 1001)).toEqual([{ start: 100000, count: 65536 }, { start: 500000, count: 5 }]);
  expect(parseSubids(subuid, "dave", 1000)).toEqual([{ start: 300000, count: 10 }]);
  expect(parseSubids(subuid, "carol", 5)).toEqual([]);
  expect(parseSubids("", "alice", 1)).toEqual([]);
  // indented lines and CRLF endings, as hand-edited files have them
  expect(parseSubids("  erin:200000:100\r\n  # indented comment\r\n", "erin", 7)).toEqual([{ start: 200000, count: 100 }]);
});

test("rangeMaps puts the user at 0 and the ranges after it", () => {
  const maps = rangeMaps(1000, [{ start: 100000, count: 65536 }, { start: 500000, count: 5 }]);
  expect(maps).toEqual([
    { containerID: 0, hostID: 1000, size: 1 },
    { containerID: 1, hostID: 100000, size: 65536 },
    { containerID: 65537, hostID: 500000, size: 5 },
  ]);
  expect(mapsContain(maps, 65541)).toBe(true);
  expect(formatMap(maps)).toBe("0 1000 1\n1 100000 65536\n65537 500000 5\n");
  expect(newidmapArgs(maps.slice(0, 2))).toEqual(["0", "1000", "1", "1", "100000", "65536"]);
  expect(isSelfMap(maps, 1000)).toBe(false);
  expect(isSelfMap(maps.slice(0, 1), 1000)).toBe(true);
});

test("checkMaps names overlaps, empty maps and bad numbers", () => {
  expect(checkMaps([{ containerID: 0, hostID: 1000, size: 1 }], "uidMappings")).toEqual([]);
  expect(checkMaps([], "uidMappings")).toEqual(["uidMappings: no mappings"]);
  expect(checkMaps([{ containerID: 0, hostID: 1, size: 10 }, { containerID: 5, hostID: 100, size: 1 }], "m")).toEqual(["m: container ranges overlap"]);
  expect(checkMaps([{ containerID: 0, hostID: 1, size: 10 }, { containerID: 50, hostID: 5, size: 1 }], "m")).toEqual(["m: host ranges overlap"]);
  expect(checkMaps([{ containerID: -1, hostID: 1, size: 0 }], "m")).toEqual(["m: containerID -1 is out of range", "m: a mapping of size 0"]);
});

test("chooseMaps: ranges when configured, otherwise one id with a notice that says why", () => {
  const who = { uid: 1000, gid: 1000, user: "alice" };
  const sub = { uids: [{ start: 100000, count: 65536 }], gids: [{ start: 100000, count: 65536 }] };
  const helpers = (n: string) => `/usr/bin/${n}`;
  const auto = chooseMaps("auto", who, () => sub, helpers);
  expect(auto.uidMappings).toHaveLength(2);
  expect(auto.notice).toBeUndefined();
  expect(chooseMaps("single", who, () => sub, helpers)).toEqual({
    uidMappings: [{ containerID: 0, hostID: 1000, size: 1 }],
    gidMappings: [{ containerID: 0, hostID: 1000, size: 1 }],
  });
  expect(chooseMaps("auto", who, () => ({ uids: [], gids: [] }), helpers).notice).toContain("no subordinate ids for alice");
  expect(chooseMaps("auto", who, () => sub, () => undefined).notice).toContain("install the uidmap package");
});

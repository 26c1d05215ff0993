import { expect, test } from "bun:test";
import { defaultSpec } from "../../src/spec/defaults.ts";
import type { Spec } from "../../src/spec/types.ts";
import { validateSpec } from "../../src/spec/validate.ts";

const good = (): Spec => {
  const s = defaultSpec({ rootless: true, uidMappings: [{ containerID: 0, hostID: 1000, size: 1 }], gidMappings: [{ containerID: 0, hostID: 1000, size: 1 }] });
  s.root!.path = "/r";
  return s;
};

test("the default rootless spec is valid", () => {
  expect(validateSpec(good())).toEqual([]);
});

test("each kind of problem is named", () => {
  const s = good();
  s.ociVersion = "0.9";
  s.process!.args = [];
  s.process!.cwd = "relative";
  s.process!.env = ["NOEQUALS"];
  s.process!.capabilities!.bounding = ["CAP_FLY"];
  s.process!.rlimits = [{ type: "RLIMIT_BOGUS", soft: 1, hard: 1 }, { type: "RLIMIT_NOFILE", soft: 2, hard: 1 }, { type: "RLIMIT_CORE", soft: 1.5, hard: 2 }];
  s.process!.user.umask = 1.5;
  s.hostname = "bad host";
  s.mounts = [{ destination: "relative" }];
  s.linux!.namespaces!.push({ type: "time" }, { type: "network", path: "/proc/1/ns/net" });
  expect(validateSpec(s)).toEqual([
    'ociVersion "0.9" is not a 1.x runtime spec',
    "process.args is empty: give a command",
    'process.cwd "relative" is not an absolute path',
    'process.env entry "NOEQUALS" is not NAME=VALUE',
    'process.capabilities.bounding: unknown capability "CAP_FLY"',
    'process.rlimits: unknown type "RLIMIT_BOGUS"',
    "process.rlimits: RLIMIT_NOFILE soft limit is above the hard limit",
    "process.rlimits: RLIMIT_CORE limits are not whole numbers of 0 or more",
    "process.user.umask is not a mode from 0 to 0777",
    'hostname "bad host" is not a valid host name',
    'mount destination "relative" is not an absolute path',
    'namespace "time" is not supported',
    "joining an existing network namespace (/proc/1/ns/net) is not supported",
  ]);
});

test("a user outside the id map is refused with the way out", () => {
  const s = good();
  s.process!.user = { uid: 1000, gid: 0 };
  expect(validateSpec(s)).toEqual([
    "user 1000 is not mapped into the container (the uid map covers 0): add subordinate ids to /etc/subuid or run as root",
  ]);
  s.process!.user = { uid: 0, gid: 0, additionalGids: [5] };
  expect(validateSpec(s)[0]).toContain("group 5 is not mapped");
});

test("a hostname needs a uts namespace", () => {
  const s = good();
  s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== "uts");
  expect(validateSpec(s)).toEqual(["a hostname needs a uts namespace"]);
});

test("uid= and gid= mount options must name mapped ids; devpts is left to the compiler", () => {
  const s = good();
  s.mounts!.push({ destination: "/t", type: "tmpfs", source: "tmpfs", options: ["uid=33", "gid=0"] });
  expect(validateSpec(s)).toEqual(["mount /t: uid=33 is not mapped into the container"]);
});

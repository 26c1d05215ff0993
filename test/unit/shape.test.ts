import { expect, test } from "bun:test";
import { checkShape, unsupported } from "../../src/spec/shape.ts";

const good = {
  ociVersion: "1.0.2",
  process: { user: { uid: 0, gid: 0 }, args: ["sh"], env: ["A=1"], cwd: "/", capabilities: { bounding: ["CAP_KILL"] } },
  root: { path: "rootfs" },
  mounts: [{ destination: "/proc", type: "proc", source: "proc" }],
  linux: { namespaces: [{ type: "pid" }], uidMappings: [{ containerID: 0, hostID: 1000, size: 1 }] },
  annotations: { a: "b" },
  somethingNew: { ignored: true },
};

test("a well-formed config.json has no problems; unknown keys are let through", () => {
  expect(checkShape(good)).toEqual([]);
});

test("each wrong type is named with where it is", () => {
  expect(checkShape(null)).toEqual(["config.json is null, not an object"]);
  expect(checkShape({ root: { path: 1 } })).toEqual(["config.json.ociVersion is missing", "config.json.root.path is a number, not a string"]);
  expect(
    checkShape({
      ...good,
      process: { user: {}, cwd: "/", env: ["A=1", 2], args: "sh" },
      mounts: {},
      linux: { uidMappings: [{ containerID: "0", hostID: 1, size: 1 }] },
      hostname: "a\0b",
    }),
  ).toEqual([
    "config.json.hostname holds a NUL byte",
    "config.json.process.user.uid is missing",
    "config.json.process.user.gid is missing",
    "config.json.process.args is a string, not an array",
    "config.json.process.env[1] is a number, not a string",
    "config.json.mounts is an object, not an array",
    "config.json.linux.uidMappings[0].containerID is a string, not a number",
  ]);
});

test("settings bunker does not apply yet are listed for a warning", () => {
  expect(unsupported(good)).toEqual([]);
  expect(unsupported({ ...good, linux: { resources: { devices: [{ allow: false, access: "rwm" }] } } })).toEqual([]);
  expect(unsupported({ ...good, hooks: { prestart: [{}] }, linux: { seccomp: { defaultAction: "SCMP_ACT_ERRNO" }, resources: {} } })).toEqual([
    "hooks",
    "linux.seccomp",
  ]);
});

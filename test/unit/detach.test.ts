import { expect, test } from "bun:test";
import { parseLog, sinceTime } from "../../src/cli/logs.ts";
import { ago } from "../../src/cli/ps.ts";
import { signalNumber } from "../../src/runtime/containers.ts";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { ContainerDir, parseExit, parsePids } from "../../src/runtime/state.ts";
import { execProcess } from "../../src/spec/build.ts";
import type { Spec } from "../../src/spec/types.ts";

test("the log: whole lines, partial records joined, streams kept apart", () => {
  const text = [
    "2026-01-01T00:00:00.000000001Z stdout F hello",
    "2026-01-01T00:00:00.000000002Z stderr P par",
    "2026-01-01T00:00:00.000000003Z stderr F tial",
    "2026-01-01T00:00:00.000000004Z stdout F  spaced  out ",
    "2026-01-01T00:00:00.000000005Z stdout P no newline",
    "",
  ].join("\n");
  const { lines, pending } = parseLog(text);
  expect(lines).toEqual([
    { time: "2026-01-01T00:00:00.000000001Z", stream: "stdout", text: "hello\n" },
    { time: "2026-01-01T00:00:00.000000002Z", stream: "stderr", text: "partial\n" },
    { time: "2026-01-01T00:00:00.000000004Z", stream: "stdout", text: " spaced  out \n" },
  ]);
  expect(pending).toEqual({ time: "2026-01-01T00:00:00.000000005Z", stream: "stdout", text: "no newline" });
  // the rest of a partial line arrives later (logs -f)
  expect(parseLog("2026-01-01T00:00:01Z stdout F , done\n", pending).lines).toEqual([
    { time: "2026-01-01T00:00:00.000000005Z", stream: "stdout", text: "no newline, done\n" },
  ]);
  // a partial line of one stream does not swallow the other's
  const mixed = parseLog("T1 stdout P a\nT2 stderr F b\n");
  expect(mixed.lines.map((l) => [l.stream, l.text])).toEqual([["stdout", "a"], ["stderr", "b\n"]]);
  // garbage is skipped, not printed
  expect(parseLog("not a record\n").lines).toEqual([]);
});

test("--since: RFC 3339, Unix seconds, or a duration back from now", () => {
  const now = Date.parse("2026-11-27T12:00:00Z");
  expect(sinceTime("2026-11-27T11:00:00Z", now)).toBe(Date.parse("2026-11-27T11:00:00Z"));
  expect(sinceTime("1700000000", now)).toBe(1700000000000);
  expect(sinceTime("10m", now)).toBe(now - 600_000);
  expect(sinceTime("1h30m", now)).toBe(now - 5_400_000);
  expect(sinceTime("45s", now)).toBe(now - 45_000);
  expect(() => sinceTime("yesterday", now)).toThrow('invalid --since "yesterday"');
});

test("signals by name, with or without SIG, or by number", () => {
  expect(signalNumber("TERM")).toBe(15);
  expect(signalNumber("sigusr1")).toBe(10);
  expect(signalNumber("9")).toBe(9);
  expect(() => signalNumber("NOPE")).toThrow('invalid signal "NOPE"');
  expect(() => signalNumber("65")).toThrow();
  // real-time ones, as Docker's ParseSignal names them (systemd images stop with SIGRTMIN+3)
  expect(["SIGRTMIN+3", "RTMIN", "rtmin+30", "RTMAX", "SIGRTMAX-1", "RTMAX-30"].map(signalNumber)).toEqual([37, 34, 64, 64, 63, 34]);
  for (const bad of ["RTMIN+31", "RTMAX-31", "RTMIN-1", "RTMAX+1", "RTMIN+", "RTMID"]) expect(() => signalNumber(bad)).toThrow(`invalid signal "${bad}"`);
});

test("the stage's pid and exit records", () => {
  expect(parsePids("100 555 101 556 2026-11-27T12:00:00.000000000Z\n")).toEqual({ stage: 100, stageStart: "555", pid: 101, pidStart: "556", started: "2026-11-27T12:00:00.000000000Z" });
  expect(parsePids("100 555")).toBeUndefined();
  expect(parsePids(undefined)).toBeUndefined();
  expect(parseExit("137 2026-11-27T12:00:01.5Z\n")).toEqual({ code: 137, finished: "2026-11-27T12:00:01.5Z", oom: false });
  expect(parseExit("137 2026-11-27T12:00:01.5Z oom\n")).toEqual({ code: 137, finished: "2026-11-27T12:00:01.5Z", oom: true });
  expect(parseExit("0\n")).toEqual({ code: 0, finished: "", oom: false }); // stores written before the time was recorded
  expect(parseExit("x")).toBeUndefined();
});

test("exit records for `wait` are swept by the start time in their names, looking closer only at what goes", () => {
  const root = mkdtempSync(`${tmpdir()}/bunker-exits-`);
  try {
    const now = Math.floor(Date.now() / 1000);
    mkdirSync(`${root}/exits`);
    const put = (name: string, mtime = now) => {
      writeFileSync(`${root}/exits/${name}`, "0\n");
      utimesSync(`${root}/exits/${name}`, mtime, mtime);
    };
    for (let i = 0; i < 60; i++) put(`${now - 7200}-stale${i}`, now - 7000); // started and written over an hour ago
    put(`${now - 7200}-longrun`); // started two hours ago, ended just now: kept
    put("0123abcd", now - 7000); // an older bunker's name: swept by its time alone
    for (let i = 0; i < 10; i++) put(`${now - 60}-fresh${i}`);
    const path = new ContainerDir(root, "c0ffee").exitRecord();
    expect(path).toMatch(new RegExp(`^${root}/exits/\\d+-c0ffee$`));
    const left = readdirSync(`${root}/exits`).sort();
    expect(left).toHaveLength(11);
    expect(left.filter((n) => n.includes("stale") || n === "0123abcd")).toEqual([]);
    expect(left).toContain(`${now - 7200}-longrun`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("exec's process: the container's, with -u, -w, -e and -t applied", () => {
  const spec: Spec = {
    ociVersion: "1.0.2",
    hostname: "box",
    process: {
      user: { uid: 0, gid: 0 },
      args: ["sleep", "100"],
      env: ["PATH=/bin", "HOME=/root", "KEEP=1"],
      cwd: "/",
      capabilities: { bounding: ["CAP_CHOWN"], effective: ["CAP_CHOWN"], permitted: ["CAP_CHOWN"], inheritable: [], ambient: [] },
      noNewPrivileges: true,
    },
    linux: { uidMappings: [{ containerID: 0, hostID: 1000, size: 1 }], gidMappings: [{ containerID: 0, hostID: 1000, size: 1 }] },
  };
  const files: Record<string, string> = { "/etc/passwd": "root:x:0:0::/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n", "/etc/group": "" };
  const p = execProcess(spec, ["id"], { env: ["NEW=2"], workdir: "/tmp/../srv", user: "bob", tty: true }, (f) => files[f], {});
  expect(p.args).toEqual(["id"]);
  expect(p.cwd).toBe("/srv");
  expect(p.user).toMatchObject({ uid: 1000, gid: 1000 });
  expect(p.terminal).toBe(true);
  expect(p.env).toEqual(expect.arrayContaining(["KEEP=1", "NEW=2", "HOME=/home/bob", "TERM=xterm", "HOSTNAME=box"]));
  expect(p.capabilities).toMatchObject({ bounding: ["CAP_CHOWN"], effective: [], permitted: [] });
  expect(spec.process!.args).toEqual(["sleep", "100"]); // the container's own is untouched
  expect(() => execProcess(spec, ["id"], { env: [], workdir: "rel", tty: false }, () => undefined, {})).toThrow("--workdir must be an absolute path");
});

test("ps says how long ago as Docker's does", () => {
  const now = Date.parse("2026-11-27T12:00:00Z");
  const at = (s: number) => ago(new Date(now - s * 1000).toISOString(), now);
  expect([0, 1, 2, 59, 60, 119, 120, 3599, 3600, 5399, 5400, 47 * 3600, 48 * 3600, 14 * 86400, 60 * 86400, 800 * 86400].map(at)).toEqual([
    "Less than a second ago", "1 second ago", "2 seconds ago", "59 seconds ago", "About a minute ago", "About a minute ago", "2 minutes ago",
    "59 minutes ago", "About an hour ago", "About an hour ago", "2 hours ago", "47 hours ago", "2 days ago", "2 weeks ago", "2 months ago", "2 years ago",
  ]);
});

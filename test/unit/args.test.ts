import { expect, test } from "bun:test";
import { HelpRequest, parseCli } from "../../src/cli/args.ts";
import { runArgs } from "../../src/cli/run.ts";

const REPEAT = ["env", "volume"] as const;
const parse = (raw: string[]) => parseCli(runArgs, raw, { verb: "run", stopAtPositional: true, repeatable: REPEAT });

test("options end at the first positional, so the command keeps its own flags", () => {
  const r = parse(["-it", "-e", "A=1", "--env=B=2", "-eC=3", "-v", "/a:/b", "rootfs", "sh", "-c", "echo -e"]);
  expect(r.values.tty).toBe(true);
  expect(r.values.interactive).toBe(true);
  expect(r.values.env).toEqual(["A=1", "B=2", "C=3"]);
  expect(r.values.volume).toEqual(["/a:/b"]);
  expect(r.positionals).toEqual(["rootfs", "sh", "-c", "echo -e"]);
});

test("-- ends options; --flag=false turns a boolean off", () => {
  expect(parse(["--init=false", "--", "-rootfs-with-dash"]).values.init).toBe(false);
  expect(parse(["--", "-x"]).positionals).toEqual(["-x"]);
  expect(parse(["-w", "/srv", "r"]).values.workdir).toBe("/srv");
  expect(parse(["-w=/srv", "r"]).values.workdir).toBe("/srv");
});

test("--help among the options asks for the usage; after the rootfs it is the command's", () => {
  expect(() => parse(["-w", "/x", "--help"])).toThrow(HelpRequest);
  expect(parse(["r", "ls", "--help"]).positionals).toEqual(["r", "ls", "--help"]);
});

test("bad flags are errors that say where to look", () => {
  expect(() => parse(["--nope", "r"])).toThrow("unknown flag: --nope (see 'bunker run --help')");
  expect(() => parse(["-X", "r"])).toThrow("unknown shorthand flag: 'X' in -X");
  expect(() => parse(["-e"])).toThrow("flag needs an argument: -e");
  expect(() => parse(["--init=maybe", "r"])).toThrow('invalid value "maybe" for --init');
  expect(() => parse(["--e", "x"])).toThrow("unknown flag: --e");
  expect(() => parse(["--target", "x"])).toThrow("unknown flag: --target");
});

test("a verb that declares no positionals refuses arguments by name", () => {
  const defs = { json: { type: "boolean", description: "JSON" } } as const;
  expect(parseCli(defs, ["--json"], { verb: "images" }).values.json).toBe(true);
  expect(() => parseCli(defs, ["--json", "extra"], { verb: "images" })).toThrow('images takes no arguments, got "extra"');
});

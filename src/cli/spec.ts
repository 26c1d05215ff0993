import { BunkerError } from "../errors.ts";
import { singleMap } from "../linux/idmap.ts";
import * as sys from "../linux/sys.ts";
import { defaultSpec } from "../spec/defaults.ts";
import { parseCli } from "./args.ts";
import type { Command } from "./command.ts";

const specArgs = {
  rootless: { type: "boolean", description: "Write a config for running without root: a user namespace mapping your ids, no network namespace" },
  bundle: { type: "string", alias: "b", description: "The bundle directory to write config.json into (default: .)", valueHint: "DIR" },
} as const;

export default {
  def: { meta: { name: "spec", description: "Write a default OCI runtime config.json, as `runc spec` does" }, args: specArgs },
  run(rawArgs) {
    const { values } = parseCli(specArgs, rawArgs, { verb: "spec" });
    const dir = (values.bundle as string | undefined) ?? ".";
    const path = `${dir}/config.json`;
    const rootless = values.rootless as boolean;
    const spec = defaultSpec({
      rootless,
      uidMappings: rootless ? singleMap(process.getuid!()) : undefined,
      gidMappings: rootless ? singleMap(process.getgid!()) : undefined,
    });
    try {
      sys.writeFile(path, `${JSON.stringify(spec, null, "\t")}\n`);
    } catch (e) {
      if (e instanceof sys.SysError && e.code === "EEXIST") throw new BunkerError(`${path} exists: remove it first`);
      throw new BunkerError(`cannot write ${path}: ${e instanceof sys.SysError ? e.reason : e}`);
    }
  },
} satisfies Command<typeof specArgs>;

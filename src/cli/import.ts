import { BunkerError } from "../errors.ts";
import { parseCli } from "./args.ts";
import type { Command } from "./command.ts";

const importArgs = {
  source: { type: "positional", description: "A bunker bundle, a root filesystem tar, a docker-archive, an OCI layout (tar or directory); plain, gzip or zstd; - for the standard input", valueHint: "FILE|DIR|-" },
  name: { type: "string", description: "Name the image", valueHint: "NAME[:TAG]" },
  json: { type: "boolean", description: "Print the result as JSON" },
  digest: { type: "string", description: "Refuse a bundle unless its digest (as `export --json` prints it) is this one", valueHint: "sha256:HEX" },
} as const;

export default {
  def: { meta: { name: "import", description: "Import an image into the store" }, args: importArgs },
  async run(rawArgs) {
    const { values, positionals } = parseCli(importArgs, rawArgs, { verb: "import" });
    if (positionals.length !== 1) throw new BunkerError("import takes one FILE or DIR: bunker import FILE|DIR|- [--name NAME[:TAG]]");
    const name = values.name as string | undefined;
    if (name !== undefined) (await import("../image/store.ts")).checkImageName(name);
    const digest = values.digest as string | undefined;
    if (digest !== undefined && !/^sha256:[0-9a-f]{64}$/.test(digest)) throw new BunkerError(`invalid --digest "${digest}": a bundle's digest is sha256: and 64 hex digits`);
    const { importPath } = await import("../image/import.ts");
    const images = await importPath(positionals[0]!, name, !values.json, digest);
    if (values.json) console.log(JSON.stringify(images.map((i) => ({ id: i.id, names: i.names, layers: i.layers.length, size: i.size }))));
    else for (const i of images) console.log(`${i.names[0] ?? "<none>"} ${i.id}`);
  },
} satisfies Command<typeof importArgs>;

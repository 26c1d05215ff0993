import { BunkerError } from "../errors.ts";
import * as sys from "../linux/sys.ts";
import { resolve } from "../paths.ts";
import { parseCli } from "./args.ts";
import type { Command } from "./command.ts";

const CODECS: string[] = ["zstd", "gzip"];

const exportArgs = {
  source: { type: "positional", description: "A container (its image and its changes; a running one as its files are while they are read) or an image", valueHint: "CONTAINER|IMAGE" },
  output: { type: "string", alias: "o", description: "The bundle file to write (default: the standard output, when it is not a terminal)", valueHint: "FILE" },
  compress: { type: "enum", options: CODECS, description: "Frame compression: zstd (default) or gzip", valueHint: "zstd|gzip" },
  json: { type: "boolean", description: "Print a summary as JSON" },
} as const;

export default {
  def: { meta: { name: "export", description: "Write a container or an image as one portable bundle file" }, args: exportArgs },
  async run(rawArgs) {
    const { values, positionals } = parseCli(exportArgs, rawArgs, { verb: "export" });
    if (positionals.length !== 1) throw new BunkerError("export takes one CONTAINER or IMAGE: bunker export CONTAINER|IMAGE [-o FILE]");
    const output = (values.output as string | undefined) ?? "-";
    if (output === "") throw new BunkerError("export -o needs a FILE: where to write the bundle");
    // as docker export: to the standard output unless -o, but never to a terminal
    if (output === "-" && sys.isatty(1)) throw new BunkerError("refusing to write a bundle to a terminal: use -o FILE, or redirect the output");
    // a closed one would take the bundle to Bun's /dev/null in its place, and exit 0
    if (output === "-" && sys.closedAtStart(1)) throw new BunkerError("the standard output is closed: use -o FILE, or redirect the output");
    if (output === "-" && values.json) throw new BunkerError("--json prints to the standard output, where the bundle goes: use -o FILE with it");
    const { exportBundle } = await import("../bundle/export.ts");
    const summary = await exportBundle(positionals[0]!, {
      output: output === "-" ? output : resolve(output),
      codec: (values.compress as "zstd" | "gzip" | undefined) ?? "zstd",
      progress: !values.json,
    });
    if (values.json) console.log(JSON.stringify(summary));
  },
} satisfies Command<typeof exportArgs>;

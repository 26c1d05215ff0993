import { BunkerError } from "../errors.ts";
import { resolve } from "../paths.ts";
import { parseCli } from "./args.ts";
import type { Command } from "./command.ts";

const CODECS: string[] = ["zstd", "gzip"];

const exportArgs = {
  source: { type: "positional", description: "A stopped container (its image and its changes) or an image", valueHint: "CONTAINER|IMAGE" },
  output: { type: "string", alias: "o", description: "The bundle file to write", valueHint: "FILE" },
  compress: { type: "enum", options: CODECS, description: "Frame compression: zstd (default) or gzip", valueHint: "zstd|gzip" },
  json: { type: "boolean", description: "Print a summary as JSON" },
} as const;

export default {
  def: { meta: { name: "export", description: "Write a container or an image as one portable bundle file" }, args: exportArgs },
  async run(rawArgs) {
    const { values, positionals } = parseCli(exportArgs, rawArgs, { verb: "export" });
    if (positionals.length !== 1) throw new BunkerError("export takes one CONTAINER or IMAGE: bunker export CONTAINER|IMAGE -o FILE");
    const output = values.output as string | undefined;
    if (!output) throw new BunkerError("export needs -o FILE: where to write the bundle");
    const { exportBundle } = await import("../bundle/export.ts");
    const summary = await exportBundle(positionals[0]!, {
      output: resolve(output),
      codec: (values.compress as "zstd" | "gzip" | undefined) ?? "zstd",
      progress: !values.json,
    });
    if (values.json) console.log(JSON.stringify(summary));
  },
} satisfies Command<typeof exportArgs>;

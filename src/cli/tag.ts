import { BunkerError } from "../errors.ts";
import { parseCli } from "./args.ts";
import type { Command } from "./command.ts";

const tagArgs = {
  images: { type: "positional", description: "The image, and the name to give it", valueHint: "SOURCE TARGET" },
} as const;

export default {
  def: { meta: { name: "tag", description: "Give an image another name (which leaves any image that had it)" }, args: tagArgs },
  async run(rawArgs) {
    const { positionals } = parseCli(tagArgs, rawArgs, { verb: "tag" });
    if (positionals.length !== 2) throw new BunkerError("tag takes an image and a name: bunker tag SOURCE[:TAG]|ID TARGET[:TAG]");
    const { Store } = await import("../image/store.ts");
    (await Store.open()).tag(positionals[0]!, positionals[1]!);
  },
} satisfies Command<typeof tagArgs>;

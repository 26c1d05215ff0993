import { BunkerError } from "../errors.ts";
import { parseCli } from "./args.ts";
import { type Command, each } from "./command.ts";

const rmiArgs = {
  images: { type: "positional", description: "Images to remove", valueHint: "NAME|ID..." },
  force: { type: "boolean", alias: "f", description: "Remove an image given by id with all its names" },
} as const;

export default {
  def: { meta: { name: "rmi", description: "Remove image names, and an image with its last name (and the layers no other image uses)" }, args: rmiArgs },
  async run(rawArgs) {
    const { values, positionals } = parseCli(rmiArgs, rawArgs, { verb: "rmi" });
    if (positionals.length === 0) throw new BunkerError("rmi needs an image: bunker rmi NAME|ID...");
    const { Store } = await import("../image/store.ts");
    const store = await Store.open();
    await each("rmi", positionals, async (ref) => (await store.removeRef(ref, values.force as boolean)).join("\n"));
  },
} satisfies Command<typeof rmiArgs>;

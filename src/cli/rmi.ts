import { BunkerError } from "../errors.ts";
import { parseCli } from "./args.ts";
import type { Command } from "./command.ts";

const rmiArgs = {
  images: { type: "positional", description: "Images to remove", valueHint: "NAME|ID..." },
} as const;

export default {
  def: { meta: { name: "rmi", description: "Remove images, and the layers no other image uses" }, args: rmiArgs },
  async run(rawArgs) {
    const { positionals } = parseCli(rmiArgs, rawArgs, { verb: "rmi" });
    if (positionals.length === 0) throw new BunkerError("rmi needs an image: bunker rmi NAME|ID...");
    const { Store } = await import("../image/store.ts");
    const store = await Store.open();
    const containers = store.containers(); // rmi removes none: read them once
    for (const ref of positionals) {
      const image = store.find(ref);
      if (!image) throw new BunkerError(`no such image: ${ref}`);
      const users = containers.filter((c) => c.image === image.id);
      if (users.length) {
        throw new BunkerError(`image ${ref} is used by container ${users[0]!.name ?? users[0]!.id.slice(0, 12)}: remove that first ('bunker rm')`);
      }
      await store.removeImage(image);
      console.log(`Deleted: ${image.id}`);
    }
  },
} satisfies Command<typeof rmiArgs>;

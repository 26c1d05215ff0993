import { BunkerError } from "../errors.ts";
import { parseCli } from "./args.ts";
import type { Command } from "./command.ts";

const rmArgs = {
  containers: { type: "positional", description: "Containers to remove", valueHint: "NAME|ID..." },
} as const;

export default {
  def: { meta: { name: "rm", description: "Remove stopped containers and their files" }, args: rmArgs },
  async run(rawArgs) {
    const { positionals } = parseCli(rmArgs, rawArgs, { verb: "rm" });
    if (positionals.length === 0) throw new BunkerError("rm needs a container: bunker rm NAME|ID...");
    const { running } = await import("../runtime/state.ts");
    const { Store } = await import("../image/store.ts");
    const store = new Store();
    const live = new Set(running().map((s) => s.id));
    for (const ref of positionals) {
      const c = store.findContainer(ref);
      if (!c) throw new BunkerError(`no such container: ${ref}`);
      if (live.has(c.id)) throw new BunkerError(`container ${ref} is running: stop it first`);
      await store.removeContainer(c);
      console.log(ref);
    }
  },
} satisfies Command<typeof rmArgs>;

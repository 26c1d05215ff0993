import { parseCli } from "./args.ts";
import type { Command } from "./command.ts";
import { table } from "./table.ts";

const psArgs = {
  all: { type: "boolean", alias: "a", description: "Show stopped containers too" },
  quiet: { type: "boolean", alias: "q", description: "Show only ids" },
  json: { type: "boolean", description: "Print the containers as JSON" },
} as const;

function ago(iso: string): string {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.floor(s)} seconds ago`;
  if (s < 3600) return `${Math.floor(s / 60)} minutes ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} hours ago`;
  return `${Math.floor(s / 86400)} days ago`;
}

export default {
  def: { meta: { name: "ps", description: "List containers" }, args: psArgs },
  async run(rawArgs) {
    const { values } = parseCli(psArgs, rawArgs, { verb: "ps" });
    const { running } = await import("../runtime/state.ts");
    const { Store } = await import("../image/store.ts");
    const live = new Map(running().map((s) => [s.id, s]));
    const stored = new Store().containers();
    const rows = new Map<string, { id: string; image: string; command: string; created: string; status: string; name: string }>();
    for (const c of stored) {
      const up = live.has(c.id);
      if (!up && !values.all) continue;
      rows.set(c.id, {
        id: c.id,
        image: c.imageName ?? c.image.slice(7, 19),
        command: c.command.join(" "),
        created: c.created,
        status: up ? "running" : c.exitCode === undefined ? "created" : `exited (${c.exitCode})`,
        name: c.name ?? "",
      });
    }
    for (const s of live.values()) {
      if (!rows.has(s.id)) rows.set(s.id, { id: s.id, image: s.rootfs, command: "", created: s.created, status: "running", name: s.name ?? "" });
    }
    const list = [...rows.values()];
    if (values.json) return console.log(JSON.stringify(list));
    if (values.quiet) return list.forEach((r) => console.log(r.id.slice(0, 12)));
    const lines = [["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"]];
    for (const r of list) lines.push([r.id.slice(0, 12), r.image, JSON.stringify(r.command.slice(0, 20)), ago(r.created), r.status, r.name]);
    console.log(table(lines));
  },
} satisfies Command<typeof psArgs>;

import { parseCli } from "./args.ts";
import type { Command } from "./command.ts";
import { table } from "./table.ts";

const psArgs = {
  all: { type: "boolean", alias: "a", description: "Show stopped containers too" },
  quiet: { type: "boolean", alias: "q", description: "Show only ids" },
  json: { type: "boolean", description: "Print the containers as JSON" },
} as const;

export function ago(iso: string): string {
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
    const { list } = await import("../runtime/containers.ts");
    const rows = list()
      .filter((v) => values.all || v.status === "running")
      .map((v) => ({
        id: v.id,
        name: v.name ?? "",
        image: v.image,
        command: v.command.join(" "),
        created: v.created,
        state: v.status,
        status: v.status === "exited" ? `exited (${v.exitCode})` : v.paused ? "paused" : v.status,
        exitCode: v.exitCode,
        pid: v.status === "running" ? v.runtime?.pids?.pid : undefined,
      }));
    if (values.json) return console.log(JSON.stringify(rows));
    if (values.quiet) return rows.forEach((r) => console.log(r.id.slice(0, 12)));
    const lines = [["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"]];
    for (const r of rows) lines.push([r.id.slice(0, 12), r.image, JSON.stringify(r.command.slice(0, 20)), ago(r.created), r.status, r.name]);
    console.log(table(lines));
  },
} satisfies Command<typeof psArgs>;

import { parseCli } from "./args.ts";
import type { Command } from "./command.ts";
import { table } from "./table.ts";

const psArgs = {
  all: { type: "boolean", alias: "a", description: "Show stopped containers too" },
  quiet: { type: "boolean", alias: "q", description: "Show only ids" },
  json: { type: "boolean", description: "Print the containers as JSON" },
} as const;

/** How long ago, in the words of Docker's `ps` (go-units HumanDuration): "1 second ago", "About a minute ago", "3 weeks ago". */
export function ago(iso: string, now = Date.now()): string {
  const s = Math.floor(Math.max(0, now - Date.parse(iso)) / 1000);
  const minutes = Math.floor(s / 60);
  const hours = Math.floor(s / 3600 + 0.5);
  const span =
    s < 1 ? "Less than a second"
    : s === 1 ? "1 second"
    : s < 60 ? `${s} seconds`
    : minutes === 1 ? "About a minute"
    : minutes < 60 ? `${minutes} minutes`
    : hours === 1 ? "About an hour"
    : hours < 48 ? `${hours} hours`
    : hours < 24 * 7 * 2 ? `${Math.floor(hours / 24)} days`
    : hours < 24 * 30 * 2 ? `${Math.floor(hours / 24 / 7)} weeks`
    : hours < 24 * 365 * 2 ? `${Math.floor(hours / 24 / 30)} months`
    : `${Math.floor(hours / 24 / 365)} years`;
  return `${span} ago`;
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

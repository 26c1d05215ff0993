import { BunkerError } from "../errors.ts";
import { parseCli } from "./args.ts";
import { type Command, forEach } from "./command.ts";

const inspectArgs = {
  containers: { type: "positional", description: "Containers", valueHint: "NAME|ID..." },
  json: { type: "boolean", description: "Print JSON (an array, as Docker does)" },
} as const;

export default {
  def: { meta: { name: "inspect", description: "Show a container's state and configuration" }, args: inspectArgs },
  async run(rawArgs) {
    const { values, positionals } = parseCli(inspectArgs, rawArgs, { verb: "inspect" });
    if (positionals.length === 0) throw new BunkerError("inspect needs a container: bunker inspect NAME|ID...");
    const c = await import("../runtime/containers.ts");
    // as Docker: what is found is shown, then a line for each name that is not
    const { results, done } = await forEach(positionals, (ref) => c.describe(c.find(ref)));
    show(results, values.json as boolean);
    done();
  },
} satisfies Command<typeof inspectArgs>;

type Described = ReturnType<typeof import("../runtime/containers.ts").describe>;

function show(out: Described[], json: boolean): void {
  if (json) return console.log(JSON.stringify(out, null, 2));
  for (const d of out) {
    const s = d.State;
    console.log(
      [
        `ID:       ${d.Id}`,
        `Name:     ${d.Name ?? ""}`,
        `Image:    ${d.Image}`,
        `Command:  ${JSON.stringify(d.Args)}`,
        `State:    ${s.Status}${s.Running ? ` (pid ${s.Pid})` : s.Status === "exited" ? ` (exit code ${s.ExitCode}${s.OOMKilled ? ", OOM-killed" : ""})` : ""}`,
        `Created:  ${d.Created}`,
        `Started:  ${s.StartedAt || "-"}`,
        `Finished: ${s.FinishedAt || "-"}`,
        ...d.Mounts.map((m) => `Mount:    ${m.Source} -> ${m.Destination} (${m.Type}${m.RW ? "" : ", ro"})`),
      ].join("\n"),
    );
  }
}

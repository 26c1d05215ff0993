import { BunkerError } from "../errors.ts";
import type { ImageRecord } from "../image/store.ts";
import { parseCli } from "./args.ts";
import { type Command, forEach } from "./command.ts";
import { created, size } from "./images.ts";

const inspectArgs = {
  objects: { type: "positional", description: "Containers or images", valueHint: "NAME|ID..." },
  type: { type: "string", description: "Look only for a container or only for an image", valueHint: "container|image" },
  json: { type: "boolean", description: "Print JSON (an array, as Docker does)" },
} as const;

export default {
  def: { meta: { name: "inspect", description: "Show a container's or an image's state and configuration" }, args: inspectArgs },
  async run(rawArgs) {
    const { values, positionals } = parseCli(inspectArgs, rawArgs, { verb: "inspect" });
    const type = values.type as string | undefined;
    if (type !== undefined && type !== "container" && type !== "image") throw new BunkerError(`inspect --type takes container or image, not "${type}"`);
    if (positionals.length === 0) throw new BunkerError("inspect needs a container or an image: bunker inspect NAME|ID...");
    const c = await import("../runtime/containers.ts");
    const { Store } = await import("../image/store.ts");
    // as Docker: a container first, then an image; what is found is shown, then a line for each name that is not
    const { results, done } = await forEach(positionals, (ref): Described => {
      const container = type === "image" ? undefined : c.tryFind(ref);
      if (container) return c.describe(container);
      const image = type === "container" ? undefined : Store.existing()?.find(ref);
      if (image) return describeImage(image);
      if (type === "container") throw new BunkerError(`no such container: ${ref} (see 'bunker ps -a')`);
      if (type === "image") throw new BunkerError(`no such image: ${ref} (see 'bunker images')`);
      throw new BunkerError(`no such container or image: ${ref} (see 'bunker ps -a' and 'bunker images')`);
    });
    show(results, values.json as boolean);
    done();
  },
} satisfies Command<typeof inspectArgs>;

type ContainerInfo = ReturnType<typeof import("../runtime/containers.ts").describe>;
type ImageInfo = ReturnType<typeof describeImage>;
type Described = ContainerInfo | ImageInfo;

/** An image as `docker image inspect` shows one (the fields bunker has). */
function describeImage(i: ImageRecord) {
  const c = i.config.config ?? {};
  return {
    Id: i.id,
    RepoTags: i.names,
    Created: created(i),
    Imported: i.created,
    Source: i.source,
    Architecture: i.config.architecture ?? "",
    Os: i.config.os ?? "",
    Size: i.size,
    Config: {
      User: c.User ?? "",
      Env: c.Env ?? [],
      Entrypoint: c.Entrypoint ?? null,
      Cmd: c.Cmd ?? null,
      WorkingDir: c.WorkingDir ?? "",
      Volumes: c.Volumes ?? null,
      Labels: c.Labels ?? null,
      StopSignal: c.StopSignal ?? "",
    },
    RootFS: { Type: "layers", Layers: i.layers },
  };
}

function show(out: Described[], json: boolean): void {
  if (json) return console.log(JSON.stringify(out, null, 2));
  console.log(out.map((d) => ("RepoTags" in d ? imageText(d) : containerText(d))).join("\n\n"));
}

function containerText(d: ContainerInfo): string {
  const s = d.State;
  return [
    `ID:       ${d.Id}`,
    `Name:     ${d.Name ?? ""}`,
    `Image:    ${d.Image}`,
    `Command:  ${JSON.stringify(d.Args)}`,
    `State:    ${s.Status}${s.Running ? ` (pid ${s.Pid})` : s.Status === "exited" ? ` (exit code ${s.ExitCode}${s.OOMKilled ? ", OOM-killed" : ""})` : ""}`,
    `Created:  ${d.Created}`,
    `Started:  ${s.StartedAt || "-"}`,
    `Finished: ${s.FinishedAt || "-"}`,
    ...d.Mounts.map((m) => `Mount:    ${m.Source} -> ${m.Destination} (${m.Type}${m.RW ? "" : ", ro"})`),
  ].join("\n");
}

function imageText(d: ImageInfo): string {
  const c = d.Config;
  const labels = Object.entries(c.Labels ?? {});
  return [
    `ID:         ${d.Id}`,
    `Names:      ${d.RepoTags.join(", ") || "<none>"}`,
    `Created:    ${d.Created}`,
    `Platform:   ${[d.Os, d.Architecture].filter(Boolean).join("/") || "-"}`,
    `Size:       ${size(d.Size)} in ${d.RootFS.Layers.length} layer${d.RootFS.Layers.length === 1 ? "" : "s"}`,
    `Entrypoint: ${c.Entrypoint ? JSON.stringify(c.Entrypoint) : "-"}`,
    `Cmd:        ${c.Cmd ? JSON.stringify(c.Cmd) : "-"}`,
    `WorkingDir: ${c.WorkingDir || "-"}`,
    `User:       ${c.User || "-"}`,
    ...c.Env.map((e) => `Env:        ${e}`),
    ...Object.keys(c.Volumes ?? {}).map((v) => `Volume:     ${v}`),
    ...labels.map(([k, v]) => `Label:      ${k}=${v}`),
    ...(c.StopSignal ? [`StopSignal: ${c.StopSignal}`] : []),
  ].join("\n");
}

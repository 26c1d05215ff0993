import type { ImageRecord } from "../image/store.ts";
import { parseCli } from "./args.ts";
import type { Command } from "./command.ts";
import { table } from "./table.ts";

const imagesArgs = {
  json: { type: "boolean", description: "Print the images as JSON" },
} as const;

export function size(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let u = 0;
  while (n >= 1000 && u < units.length - 1) (n /= 1000), u++;
  return `${n.toFixed(u === 0 ? 0 : 1)}${units[u]}`;
}

/** When the image was made, as its config says (Docker's CREATED); else when it was imported. */
export function created(i: ImageRecord): string {
  const at = typeof i.config.created === "string" ? Date.parse(i.config.created) : Number.NaN;
  return Number.isNaN(at) ? i.created : new Date(at).toISOString();
}

export default {
  def: { meta: { name: "images", description: "List the images in the store" }, args: imagesArgs },
  async run(rawArgs) {
    const { values } = parseCli(imagesArgs, rawArgs, { verb: "images" });
    const { Store } = await import("../image/store.ts");
    // an empty list where there is no store yet: listing makes none
    const store = Store.existing();
    await store?.sweep();
    const images = store?.index().images ?? [];
    if (values.json) {
      console.log(JSON.stringify(images.map((i) => ({ id: i.id, names: i.names, layers: i.layers, size: i.size, created: created(i), imported: i.created }))));
      return;
    }
    const rows = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]];
    for (const i of images) {
      for (const n of i.names.length ? i.names : ["<none>:<none>"]) {
        const colon = n.lastIndexOf(":");
        rows.push([n.slice(0, colon), n.slice(colon + 1), i.id.slice(7, 19), created(i).slice(0, 19).replace("T", " "), size(i.size)]);
      }
    }
    console.log(table(rows));
  },
} satisfies Command<typeof imagesArgs>;

// Messages to the user: one line each on stderr, "bunker: ...".
// BUNKER_LOG_LEVEL=warn (or error, silent) quiets the notices.
import type { ConsolaInstance, LogObject } from "consola";
import { writeAll } from "./linux/sys.ts";

const LEVELS: Record<string, number> = { silent: -999, error: 0, warn: 1, info: 3, debug: 4 };

/** Write a line to stderr at once: `run` replaces this process right after. */
export function say(line: string): void {
  writeAll(2, new TextEncoder().encode(`${line}\n`));
}

let instance: ConsolaInstance | undefined;

/** The notice logger, made on first use: most runs print nothing. */
export function log(): ConsolaInstance {
  if (!instance) {
    const { createConsola } = require("consola/core") as typeof import("consola/core");
    instance = createConsola({
      level: LEVELS[process.env.BUNKER_LOG_LEVEL ?? "info"] ?? 3,
      reporters: [
        {
          log(obj: LogObject) {
            const text = obj.args.map((a) => (a instanceof Error ? a.message : String(a))).join(" ");
            say(`bunker: ${obj.type === "warn" ? "warning: " : ""}${text}`);
          },
        },
      ],
    });
  }
  return instance;
}

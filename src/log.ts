// Messages to the user: one line each on stderr, "bunker: ...".
// BUNKER_LOG_LEVEL=warn (or error, silent) quiets the notices.
import type { ConsolaInstance, LogObject } from "consola";
import { writeAll } from "./linux/sys.ts";

const LEVELS: Record<string, number> = { silent: -999, error: 0, warn: 1, info: 3, debug: 4 };

/**
 * Text as one line a terminal shows as it is: control characters (a newline
 * or an escape sequence in a name an archive gave) written as \n, \t, \xNN.
 */
export function oneLine(text: string): string {
  return text.replace(/[\x00-\x1f\x7f]/g, (c) => (c === "\n" ? "\\n" : c === "\t" ? "\\t" : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`));
}

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
            say(`bunker: ${obj.type === "warn" ? "warning: " : ""}${oneLine(text)}`);
          },
        },
      ],
    });
  }
  return instance;
}

import type { ArgsDef, CommandDef } from "citty";
import { BunkerError, ReportedError } from "../errors.ts";
import { oneLine, say } from "../log.ts";

/** A verb: citty's definition (for --help) and what runs it. */
export interface Command<A extends ArgsDef = ArgsDef> {
  def: CommandDef<A>;
  run(rawArgs: string[]): Promise<void> | void;
}

/**
 * A verb on containers (or images): fn on each NAME|ID in turn, printing each
 * (or what fn returns) once done. One that fails is said on its line and the
 * rest are still done, as Docker does; the exit status is then the first
 * failure's.
 */
export async function each(verb: string, names: string[], fn: (ref: string) => Promise<string | void>): Promise<void> {
  if (names.length === 0) throw new BunkerError(`${verb} needs a container: bunker ${verb} NAME|ID...`);
  let failed: BunkerError | undefined;
  for (const ref of names) {
    try {
      console.log((await fn(ref)) ?? ref);
    } catch (e) {
      if (!(e instanceof BunkerError) || names.length === 1) throw e;
      say(`bunker: ${oneLine(e.message)}`);
      failed ??= e;
    }
  }
  if (failed) throw new ReportedError(failed.message, failed.exitCode);
}

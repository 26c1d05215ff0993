import type { ArgsDef, CommandDef } from "citty";
import { BunkerError, ReportedError } from "../errors.ts";
import { oneLine, say } from "../log.ts";

/** A verb: citty's definition (for --help) and what runs it. */
export interface Command<A extends ArgsDef = ArgsDef> {
  def: CommandDef<A>;
  run(rawArgs: string[]): Promise<void> | void;
}

/**
 * fn on each of the NAME|IDs a verb was given, going on past one that fails
 * with bunker's own error, as Docker does: what the others returned, and
 * done(), which says each failure on a line of its own, after the rest, and
 * then throws (the first failure's status). With one name, its error is
 * thrown as it is.
 */
export async function forEach<T>(names: string[], fn: (ref: string) => T | Promise<T>): Promise<{ results: T[]; done(): void }> {
  const results: T[] = [];
  const failed: BunkerError[] = [];
  for (const ref of names) {
    try {
      results.push(await fn(ref));
    } catch (e) {
      if (!(e instanceof BunkerError) || names.length === 1) throw e;
      failed.push(e);
    }
  }
  const done = () => {
    for (const e of failed) say(`bunker: ${oneLine(e.message)}`);
    if (failed.length) throw new ReportedError(failed[0]!.message, failed[0]!.exitCode);
  };
  return { results, done };
}

/** A verb on containers (or images): fn on each NAME|ID in turn, printing each (or what fn returns) once done (forEach). */
export async function each(verb: string, names: string[], fn: (ref: string) => Promise<string | void>): Promise<void> {
  if (names.length === 0) throw new BunkerError(`${verb} needs a container: bunker ${verb} NAME|ID...`);
  (await forEach(names, async (ref) => console.log((await fn(ref)) ?? ref))).done();
}

import type { ArgsDef, CommandDef } from "citty";
import { BunkerError } from "../errors.ts";

/** A verb: citty's definition (for --help) and what runs it. */
export interface Command<A extends ArgsDef = ArgsDef> {
  def: CommandDef<A>;
  run(rawArgs: string[]): Promise<void> | void;
}

/** A verb on containers: fn on each NAME|ID in turn, printing each (or what fn returns) once done. */
export async function each(verb: string, names: string[], fn: (ref: string) => Promise<string | void>): Promise<void> {
  if (names.length === 0) throw new BunkerError(`${verb} needs a container: bunker ${verb} NAME|ID...`);
  for (const ref of names) console.log((await fn(ref)) ?? ref);
}

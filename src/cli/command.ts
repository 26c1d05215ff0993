import type { ArgsDef, CommandDef } from "citty";

/** A verb: citty's definition (for --help) and what runs it. */
export interface Command<A extends ArgsDef = ArgsDef> {
  def: CommandDef<A>;
  run(rawArgs: string[]): Promise<void> | void;
}

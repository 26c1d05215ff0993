// Docker-style parsing over citty's argument definitions: repeatable flags,
// bundled short booleans (-it), --flag=value, and options that end at the
// first positional so `run ROOTFS sh -c ...` leaves "-c" to the command.
import type { ArgsDef } from "citty";
import { BunkerError } from "../errors.ts";

export type Values = Record<string, string | boolean | string[] | undefined>;

/** Thrown when --help comes among the options: the caller prints the usage. */
export class HelpRequest extends Error {}

export interface ParseOptions<D extends ArgsDef> {
  /** Stop reading options at the first positional (run's COMMAND [ARG...]). */
  stopAtPositional?: boolean;
  /** String flags that may repeat and collect into a list. */
  repeatable?: readonly (keyof D & string)[];
  /** The verb, for "see 'bunker VERB --help'". */
  verb: string;
}

export function parseCli<D extends ArgsDef>(defs: D, raw: readonly string[], opts: ParseOptions<D>): { values: Values; positionals: string[] } {
  const byName = new Map<string, string>();
  for (const [key, def] of Object.entries(defs)) {
    if (def.type === "positional") continue;
    byName.set(key, key);
    const aliases = "alias" in def && def.alias ? (Array.isArray(def.alias) ? def.alias : [def.alias]) : [];
    for (const a of aliases) byName.set(a, key);
  }
  const repeatable = new Set<string>(opts.repeatable ?? []);
  const values: Values = {};
  for (const [key, def] of Object.entries(defs)) {
    if (def.type === "boolean") values[key] = def.default ?? false;
    else if (repeatable.has(key)) values[key] = [];
    else if (def.type !== "positional" && def.default !== undefined) values[key] = def.default as string;
  }
  const usage = (msg: string) => new BunkerError(`${msg} (see 'bunker ${opts.verb} --help')`);
  const positionals: string[] = [];

  const set = (flag: string, key: string, value: string | undefined, next: () => string | undefined) => {
    const def = defs[key]!;
    if (def.type === "positional") throw usage(`unknown flag: ${flag}`);
    if (def.type === "boolean") {
      if (value === undefined) values[key] = true;
      else if (value === "true" || value === "false") values[key] = value === "true";
      else throw usage(`invalid value "${value}" for ${flag}: use true or false`);
      return;
    }
    const v = value ?? next();
    if (v === undefined) throw usage(`flag needs an argument: ${flag}`);
    if (def.type === "enum" && def.options && !def.options.includes(v)) {
      throw usage(`invalid value "${v}" for ${flag}: use one of ${def.options.join(", ")}`);
    }
    if (repeatable.has(key)) (values[key] as string[]).push(v);
    else values[key] = v;
  };

  for (let i = 0; i < raw.length; i++) {
    const arg = raw[i]!;
    const next = () => (i + 1 < raw.length ? raw[++i] : undefined);
    if (arg === "--") {
      positionals.push(...raw.slice(i + 1));
      break;
    }
    if (arg === "--help") throw new HelpRequest();
    if (arg.startsWith("--") && arg.length > 2) {
      const eq = arg.indexOf("=");
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      const key = byName.get(name);
      if (!key || name.length === 1) throw usage(`unknown flag: --${name}`);
      set(`--${name}`, key, eq < 0 ? undefined : arg.slice(eq + 1), next);
      continue;
    }
    if (arg.startsWith("-") && arg.length > 1) {
      // -it, -e VAL, -eVAL, -e=VAL
      for (let k = 1; k < arg.length; k++) {
        const ch = arg[k]!;
        const key = byName.get(ch);
        if (!key) throw usage(`unknown shorthand flag: '${ch}' in ${arg}`);
        if (defs[key]!.type === "boolean") {
          set(`-${ch}`, key, undefined, next);
          continue;
        }
        const rest = arg.slice(k + 1).replace(/^=/, "");
        set(`-${ch}`, key, rest === "" ? undefined : rest, next);
        break;
      }
      continue;
    }
    if (opts.stopAtPositional) {
      positionals.push(...raw.slice(i));
      break;
    }
    positionals.push(arg);
  }
  if (positionals.length && !Object.values(defs).some((d) => d.type === "positional")) {
    throw new BunkerError(`${opts.verb} takes no arguments, got "${positionals[0]}"`);
  }
  return { values, positionals };
}

import { hash } from "node:crypto";

/** A statement written with `@name` parameters, turned into PostgreSQL's `$1, $2, …`. */
export interface Compiled {
  /** The query to send: prepared once per connection under a name derived from its text. */
  query(params: Record<string, unknown>): { name: string; text: string; values: unknown[] };
}

/**
 * Compiles `source` (parameters as `@name`, as the SQLite backend writes them) once. The prepared
 * statement's name is a digest of the text: unique per statement, within PostgreSQL's 63-byte
 * limit on names. `label` only makes the name readable in pg_prepared_statements.
 */
export function compile(label: string, source: string): Compiled {
  const names: string[] = [];
  const text = source.replace(/@(\w+)/g, (_match, name: string) => {
    let index = names.indexOf(name);
    if (index === -1) index = names.push(name) - 1;
    return `$${index + 1}`;
  });
  const name = `${label.replace(/\W+/g, "_").slice(0, 40)}_${hash("sha1", text, "hex").slice(0, 16)}`;
  return {
    query: (params) =>
      ({
        name,
        text,
        values: names.map((param) => {
          const value = params[param];
          if (value === undefined) throw new TypeError(`statement ${name}: no value for @${param}`);
          return value;
        }),
      }),
  };
}

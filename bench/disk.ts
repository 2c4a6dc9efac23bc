/**
 * Bytes on disk per key, and where they go: each table and index's pages from SQLite's dbstat
 * table (compiled into better-sqlite3's SQLite), on the largest file as seeded, before any
 * measure has written to it.
 */
import { statSync } from "node:fs";
import Database from "better-sqlite3";
import { addNote, addValueRow } from "./report.js";
import { keysLabel, largest, type Section } from "./context.js";

export const disk: Section = {
  name: "disk",
  quick: true,
  async run(ctx) {
    const file = largest(ctx);
    const size = ["", "-wal", "-shm"].reduce((sum, suffix) => sum + (statSync(file.path + suffix, { throwIfNoEntry: false })?.size ?? 0), 0);
    addValueRow(
      `bytes on disk per key, ${keysLabel(file.keys)}-key file: key row, its indexes, usage row, audit row and its indexes`,
      `${Math.round(size / file.keys)} B`,
      "—",
      "(reported)",
      true,
    );
    const db = new Database(file.path, { readonly: true });
    try {
      const hasDbstat = db.prepare("SELECT 1 FROM pragma_compile_options WHERE compile_options = 'ENABLE_DBSTAT_VTAB'").get() !== undefined;
      if (!hasDbstat) {
        addNote("Where the bytes go: this SQLite has no dbstat table; only the file size is reported.");
        return;
      }
      const objects = db
        .prepare("SELECT name, SUM(pgsize) AS bytes, SUM(payload) AS payload FROM dbstat GROUP BY name ORDER BY bytes DESC")
        .all() as { name: string; bytes: number; payload: number }[];
      const owner = db.prepare("SELECT tbl_name FROM sqlite_schema WHERE name = ?").pluck();
      const columns = db.prepare("SELECT group_concat(name, ', ') FROM pragma_index_info(?)").pluck();
      const parts = objects
        .filter((object) => object.bytes / file.keys >= 1)
        .map((object) => {
          const table = owner.get(object.name) as string;
          // SQLite names the indexes behind UNIQUE constraints itself: say which column each covers.
          const label = object.name === table ? `${table} rows` : object.name.startsWith("sqlite_autoindex_") ? `${table} (${columns.get(object.name) as string}) unique index` : object.name;
          return `${label} ${(object.bytes / file.keys).toFixed(0)} B (${Math.round((100 * object.payload) / object.bytes)} % payload)`;
        });
      addNote(`Where the bytes of a key go (${keysLabel(file.keys)}-key file, per key): ${parts.join("; ")}.`);
    } finally {
      db.close();
    }
  },
};

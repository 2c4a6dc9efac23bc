import type pg from "pg";
import { initial } from "./010-initial.js";

/** A schema step for PostgreSQL; numbered, append-only, like SQLite's. */
export interface PostgresMigration {
  version: number;
  name: string;
  sql: string;
  /** A step SQL alone cannot do, run after `sql` in the same transaction. */
  run?: (client: pg.PoolClient) => Promise<void>;
}

export const POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [initial];

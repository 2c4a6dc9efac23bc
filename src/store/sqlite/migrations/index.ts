import type Database from "better-sqlite3";
import { initial } from "./010-initial.js";
import { lifecycle } from "./020-lifecycle.js";
import { scaleAndHardening } from "./030-scale-and-hardening.js";
import { agentSafety } from "./040-agent-safety.js";

/**
 * A schema step. Migrations are append-only: a released one is never edited, a fix is a new
 * one. Versions step by 10 to leave room for a fix between two released steps.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
  /** A step SQL alone cannot do, run after `sql` in the same transaction. */
  run?: (db: Database.Database) => void;
}

export const MIGRATIONS: readonly Migration[] = [initial, lifecycle, scaleAndHardening, agentSafety];

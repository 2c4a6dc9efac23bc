import { initial } from "./010-initial.js";

/**
 * A schema step. Migrations are append-only: a released one is never edited, a fix is a new
 * one. Versions step by 10 to leave room for a fix between two released steps.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [initial];

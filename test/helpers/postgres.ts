import pg from "pg";
import { inject } from "vitest";

export { startPostgresServer, type PostgresServer } from "./postgres-server.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** The test run's PostgreSQL server (started by globalSetup), as its superuser. */
    postgresAdminUrl: string;
  }
}

let counter = 0;

/**
 * A new, empty database on the test run's PostgreSQL server (or on `adminUrl`'s), for one test
 * or suite; returns its URL. Databases are cheap to create and are left for the server's
 * removal at the end of the run.
 */
export async function createTestDatabase(adminUrl: string = inject("postgresAdminUrl")): Promise<string> {
  const name = `t_${process.pid}_${Date.now().toString(36)}_${(counter++).toString(36)}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

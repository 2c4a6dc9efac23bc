import { parseArgs } from "node:util";
import Database from "better-sqlite3";
import type { ChainVerification } from "../audit/chain.js";
import { describeDatabaseUrl, loadConfig } from "../config.js";
import { verifyPostgresAuditChain } from "../store/postgres/audit.js";
import { createPool } from "../store/postgres/pool.js";
import { verifySqliteAuditChain } from "../store/sqlite/audit-chain.js";
import { checkSchemaVersion } from "../store/sqlite/migrate.js";
import { MIGRATIONS } from "../store/sqlite/migrations/index.js";
import type { Io } from "./io.js";

const AUDIT_HELP = `Usage: api-keys-mcp audit verify [--db <path> | --database-url <url>] [--expect-head <hash>]

Checks the audit log's hash chain: every row's hash must match its content and the
row before it. Prints the number of rows checked and the head hash. Exits 0 when the
chain is intact, 1 naming the first broken row, 2 when the database cannot be read or
the chain cannot be checked.

A chain that ends where it should cannot show that rows were cut off its end: keep the
head hash it prints somewhere else (a ticket, a log shipped off the machine), and pass
it later with --expect-head; the check then fails unless that row is still in the chain.
When the server runs with API_KEYS_MCP_AUDIT_KEY, rows are chained with an HMAC under it,
which someone able to write the database cannot recompute: give the same key here.

Options:
  --db <path>            a SQLite database (default: API_KEYS_MCP_DB, else the per-user default)
  --database-url <url>   a PostgreSQL database (default: API_KEYS_MCP_DATABASE_URL when set)
  --expect-head <hash>   a head hash printed by an earlier run; it must still be in the chain
  -h, --help             show this help

Environment:
  API_KEYS_MCP_AUDIT_KEY, API_KEYS_MCP_AUDIT_KEY_FILE   the audit key, if the server uses one
`;

/** `api-keys-mcp audit verify`. Opens the database read-only. Returns the exit code. */
export async function auditCommand(args: string[], io: Io): Promise<number> {
  const fail = (message: string) => {
    io.stderr.write(`api-keys-mcp audit: ${message}\n`);
    return 2;
  };
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { db: { type: "string" }, "database-url": { type: "string" }, "expect-head": { type: "string" }, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    return fail(`${(error as Error).message}\n\n${AUDIT_HELP}`);
  }
  if (parsed.values.help) {
    io.stdout.write(AUDIT_HELP);
    return 0;
  }
  if (parsed.positionals.join(" ") !== "verify") return fail(`expected "audit verify"\n\n${AUDIT_HELP}`);
  const expectHead = parsed.values["expect-head"];
  if (expectHead !== undefined && !/^[0-9a-f]{64}$/.test(expectHead)) return fail("--expect-head takes a head hash as printed by audit verify (64 hex digits)");

  const { config, problems } = loadConfig({ env: io.env, platform: io.platform, homedir: io.homedir, readFile: io.readFileSync });
  const keyProblem = problems.find((problem) => problem.variable.startsWith("API_KEYS_MCP_AUDIT_KEY"));
  if (keyProblem) return fail(`${keyProblem.message}; ${keyProblem.fix}`);
  if (parsed.values.db !== undefined && parsed.values["database-url"] !== undefined) return fail("give --db or --database-url, not both");
  const options = { auditKey: config.auditKey, expectHead };

  let result: ChainVerification;
  const databaseUrl = parsed.values["database-url"] ?? (parsed.values.db === undefined ? config.databaseUrl : undefined);
  if (databaseUrl !== undefined) {
    if (!/^postgres(ql)?:\/\//.test(databaseUrl)) return fail("--database-url takes a postgres:// URL");
    const pool = createPool(databaseUrl, { max: 1, applicationName: "api-keys-mcp audit verify" });
    try {
      result = await verifyPostgresAuditChain(pool, options);
    } catch (error) {
      return fail(`cannot read the audit log at ${describeDatabaseUrl(databaseUrl)}: ${(error as Error).message}`);
    } finally {
      await pool.end();
    }
  } else {
    let path = parsed.values.db;
    if (path === undefined) {
      if (config.dbPath === undefined) {
        // loadConfig leaves the path out exactly when it reports the location as a problem.
        const dbProblem = problems.find((problem) => problem.variable === "API_KEYS_MCP_DB")!;
        return fail(`${dbProblem.message}; ${dbProblem.fix}`);
      }
      path = config.dbPath;
    }
    let db: Database.Database;
    try {
      db = new Database(path, { readonly: true, fileMustExist: true });
    } catch (error) {
      return fail(`cannot open ${path}: ${(error as Error).message}`);
    }
    try {
      if (checkSchemaVersion(db) < MIGRATIONS.at(-1)!.version) return fail(`${path} has an older schema; start the server once to upgrade it`);
      result = verifySqliteAuditChain(db, options);
    } catch (error) {
      return fail((error as Error).message);
    } finally {
      db.close();
    }
  }

  if (result.ok) {
    const unkeyed = config.auditKey && result.unkeyed > 0 ? `; the first ${result.unkeyed} rows were chained before the audit key was set` : "";
    io.stdout.write(`audit chain intact: ${result.rows} rows checked; head hash ${result.head}${expectHead ? "; the expected head is in the chain" : ""}${unkeyed}\n`);
    return 0;
  }
  if (result.kind === "key-required") return fail(`the chain cannot be checked after ${result.rows - 1} rows: ${result.problem}`);
  if (result.kind === "cut") {
    io.stdout.write(`audit chain BROKEN: ${result.problem}; ${result.rows} rows checked\n`);
    return 1;
  }
  io.stdout.write(`audit chain BROKEN at row ${result.seq} (event ${result.eventId}): ${result.problem}; ${result.rows} rows checked\n`);
  return 1;
}

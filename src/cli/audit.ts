import { parseArgs } from "node:util";
import Database from "better-sqlite3";
import { loadConfig } from "../config.js";
import { verifyAuditChain } from "../store/audit-chain.js";
import { checkSchemaVersion } from "../store/migrate.js";
import { lifecycle } from "../store/migrations/020-lifecycle.js";
import type { Io } from "./io.js";

const AUDIT_HELP = `Usage: api-keys-mcp audit verify [--db <path>]

Checks the audit log's hash chain: every row's hash must match its content and the
row before it. Prints the number of rows checked and the head hash (keep it somewhere
else to detect rows cut off the end later). Exits 0 when the chain is intact, 1 naming
the first broken row, 2 when the database cannot be read.

Options:
  --db <path>   the database (default: API_KEYS_MCP_DB, else the per-user default)
  -h, --help    show this help
`;

/** S4: `api-keys-mcp audit verify`. Opens the database read-only. Returns the exit code. */
export async function auditCommand(args: string[], io: Io): Promise<number> {
  const fail = (message: string) => {
    io.stderr.write(`api-keys-mcp audit: ${message}\n`);
    return 2;
  };
  let parsed;
  try {
    parsed = parseArgs({ args, options: { db: { type: "string" }, help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true });
  } catch (error) {
    return fail(`${(error as Error).message}\n\n${AUDIT_HELP}`);
  }
  if (parsed.values.help) {
    io.stdout.write(AUDIT_HELP);
    return 0;
  }
  if (parsed.positionals.join(" ") !== "verify") return fail(`expected "audit verify"\n\n${AUDIT_HELP}`);

  let path = parsed.values.db;
  if (path === undefined) {
    const { config, problems } = loadConfig({ env: io.env, platform: io.platform, homedir: io.homedir, readFile: io.readFileSync });
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
    if (checkSchemaVersion(db) < lifecycle.version) return fail(`${path} has no audit chain yet; start the server once to upgrade it`);
    const result = verifyAuditChain(db);
    if (result.ok) {
      io.stdout.write(`audit chain intact: ${result.rows} rows checked; head hash ${result.head}\n`);
      return 0;
    }
    io.stdout.write(
      `audit chain BROKEN at row ${result.seq} (event ${result.eventId}): ${result.problem}; ${result.rows} rows checked\n`,
    );
    return 1;
  } catch (error) {
    return fail((error as Error).message);
  } finally {
    db.close();
  }
}

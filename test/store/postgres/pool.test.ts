import pg from "pg";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createPool, inTransaction, readWithRetry } from "../../../src/store/postgres/pool.js";
import { createTestDatabase } from "../../helpers/postgres.js";
import { within } from "../../helpers/spawn.js";

describe("the PostgreSQL pool when a connection is cut", () => {
  let url: string;
  let admin: pg.Client;
  let pool: pg.Pool;

  beforeEach(async () => {
    url = await createTestDatabase();
    admin = new pg.Client({ connectionString: url, application_name: "test-admin" });
    await admin.connect();
    pool = createPool(url, { max: 1 });
  });
  afterEach(async () => {
    await pool.end();
    await admin.end();
  });

  // node-postgres emits 'error' on a client whose connection fails while no statement is
  // running; a client the pool has handed out had no listener, and an unhandled 'error' event
  // ends the process — the whole server, because PostgreSQL restarted or an operator ended a
  // session. Here the cut lands between two statements of a transaction, as it does under load.
  it("retries a transaction whose connection is cut between two statements, and the process goes on", async () => {
    let attempts = 0;
    const result = await inTransaction(
      pool,
      async (client) => {
        attempts += 1;
        const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
        if (attempts === 1) {
          const ended = new Promise((resolve) => client.once("end", resolve));
          await admin.query("SELECT pg_terminate_backend($1)", [rows[0]!.pid]);
          // The server's FATAL message and the close have reached the client, with no statement running.
          await within(ended, 5000, "the cut reaching the client");
        }
        return (await client.query<{ n: number }>("SELECT 42 AS n")).rows[0]!.n;
      },
      5000,
    );
    expect({ result, attempts }).toEqual({ result: 42, attempts: 2 });
    // The cut connection was discarded, not given back: the next use gets a working one.
    expect((await pool.query<{ n: number }>("SELECT 1 AS n")).rows).toEqual([{ n: 1 }]);
  });

  // A PostgreSQL that stops answering without closing its connections (a frozen host, a network
  // cut), or a lock another session keeps, left a statement waiting for ever: the call never
  // answered and kept its pooled connection. Here a session keeps an exclusive lock on a table.
  describe("when a statement gets no answer", () => {
    let locker: pg.Client;
    beforeEach(async () => {
      await admin.query("CREATE TABLE probe (n INTEGER)");
      locker = new pg.Client({ connectionString: url, application_name: "test-locker" });
      await locker.connect();
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE probe IN ACCESS EXCLUSIVE MODE");
    });
    afterEach(async () => {
      await locker.end();
    });

    it("gives the connection up after the statement timeout, and answers ERR_BUSY after the busy timeout, for writes and reads", async () => {
      const bounded = createPool(url, { max: 2, statementTimeoutMs: 200 });
      try {
        const started = Date.now();
        await expect(inTransaction(bounded, (client) => client.query("INSERT INTO probe VALUES (1)"), 600)).rejects.toMatchObject({ code: "ERR_BUSY" });
        await expect(readWithRetry(bounded, () => bounded.query("SELECT n FROM probe"), 600)).rejects.toMatchObject({ code: "ERR_BUSY" });
        // Liveness only: each gave up after a few statement timeouts, not never.
        expect(Date.now() - started).toBeLessThan(10_000);
        // The connections that waited were closed, and PostgreSQL rolled their work back: once
        // the lock is gone the pool serves, and nothing was written.
        await locker.query("COMMIT");
        expect((await bounded.query("SELECT count(*)::int AS n FROM probe")).rows).toEqual([{ n: 0 }]);
        expect(bounded.totalCount).toBeLessThanOrEqual(2);
      } finally {
        await bounded.end();
      }
    });
  });
});


import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { systemClock } from "../clock.js";
import { loadConfig } from "../config.js";
import { AppError } from "../errors.js";
import { createLogger } from "../log.js";
import { createServer } from "../server.js";
import { createServices } from "../services.js";
import type { Io } from "./io.js";

/**
 * C1: the stdio server. stdout carries only MCP messages; everything else goes to stderr.
 * Exits cleanly, closing the database, when stdin ends or on SIGINT/SIGTERM.
 */
export async function serve(io: Io): Promise<void> {
  const { config, problems } = loadConfig({ env: io.env, platform: io.platform, homedir: io.homedir, readFile: io.readFileSync });
  const logger = createLogger({ level: config.logLevel, write: (line) => io.stderr.write(`${line}\n`) });
  for (const problem of problems) logger.error("config_problem", { ...problem });

  const services = createServices({ config, problems, logger, clock: systemClock, readTokenFile: io.readFile });
  const { server, close } = createServer({ services, logger, version: io.version });
  // A line that is not JSON-RPC is reported and skipped; the server keeps answering.
  server.server.onerror = (error) => logger.warn("protocol_error", { message: error.message });

  let closing = false;
  const shutdown = (reason: string) => {
    if (closing) return;
    closing = true;
    logger.info("server_stopping", { reason });
    close().then(
      () => io.exit(0),
      (error: unknown) => {
        logger.error("shutdown_failed", { error });
        io.exit(1);
      },
    );
  };
  io.stdin.on("end", () => shutdown("stdin closed"));
  io.onSignal("SIGINT", () => shutdown("SIGINT"));
  io.onSignal("SIGTERM", () => shutdown("SIGTERM"));

  await server.connect(new StdioServerTransport(io.stdin, io.stdout));
  logger.info("server_started", {
    version: io.version,
    database: config.dbPath,
    verification: config.auth?.keyMaterial.kind ?? null,
    ready: !(services instanceof AppError),
  });
}

import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { ErrorCode } from "@modelcontextprotocol/sdk/types.js";
import { createTokenResolver } from "../auth/token-source.js";
import { systemClock } from "../clock.js";
import { loadConfig } from "../config.js";
import { AppError } from "../errors.js";
import { createLineBuffer, createLogger } from "../log.js";
import { createServer } from "../server.js";
import { createServices } from "../services.js";
import type { Io } from "./io.js";
import { startedStore } from "./started.js";
import { limitLineLength, MAX_MESSAGE_BYTES } from "./line-limit.js";
import { trackPendingRequests } from "./pending-requests.js";
import { describeProtocolError } from "./protocol-error.js";

/** How long shutdown waits for calls already received to be answered. */
const SHUTDOWN_GRACE_MS = 10_000;

/**
 * C1: the stdio server. stdout carries only MCP messages; everything else goes to stderr.
 * Exits cleanly, closing the database, when stdin ends or on SIGINT/SIGTERM.
 */
export async function serve(io: Io): Promise<void> {
  const { config, problems } = loadConfig({ env: io.env, platform: io.platform, homedir: io.homedir, readFile: io.readFileSync });
  const stderr = createLineBuffer((chunk) => io.stderr.write(chunk));
  const logger = createLogger({ level: config.logLevel, write: stderr.write, defer: stderr.defer });
  // Whatever ends the process (an uncaught error included), the buffered lines are written first.
  io.onExit(stderr.flush);
  for (const problem of problems) logger.error("config_problem", { ...problem });

  const services = createServices({ config, problems, logger, clock: systemClock });
  // On stdio the token comes from the call's argument, else the operator's environment or file.
  const resolveToken = createTokenResolver({ value: config.token.value, file: config.token.file, readFile: io.readTokenFile });
  const { server, close } = createServer({ services, logger, version: io.version, credentials: { from: "argument", resolveToken } });
  // A line that is not JSON-RPC is reported (briefly: see describeProtocolError) and skipped;
  // the server keeps answering.
  server.server.onerror = (error) => logger.warn("protocol_error", describeProtocolError(error));

  const input = io.stdin.pipe(
    limitLineLength(MAX_MESSAGE_BYTES, (bytes) => {
      logger.warn("message_too_large", { bytes, limit: MAX_MESSAGE_BYTES });
      // JSON-RPC answers a request it cannot read with an error; MCP leaves out the id it cannot know.
      void transport.send({
        jsonrpc: "2.0",
        error: { code: ErrorCode.InvalidRequest, message: `Message discarded: larger than ${MAX_MESSAGE_BYTES} bytes.` },
      });
    }),
  );
  const transport = new StdioServerTransport(input, io.stdout);
  await server.connect(transport);
  const pending = trackPendingRequests(transport);

  let closing = false;
  const shutdown = async (reason: string) => {
    if (closing) return;
    closing = true;
    logger.info("server_stopping", { reason, pending_requests: pending.size });
    try {
      // Answer what was already asked before closing the database, then let stdout drain.
      if (!(await pending.settled(SHUTDOWN_GRACE_MS))) logger.warn("shutdown_abandoned_requests", { pending_requests: pending.size });
      await close();
      if (!(services instanceof AppError)) await services.repository.close();
      stderr.flush();
      await new Promise<void>((resolve) => io.stdout.write("", () => resolve()));
      io.exit(0);
    } catch (error) {
      logger.error("shutdown_failed", { error });
      stderr.flush();
      io.exit(1);
    }
  };
  io.stdin.on("end", () => void shutdown("stdin closed"));
  io.onSignal("SIGINT", () => void shutdown("SIGINT"));
  io.onSignal("SIGTERM", () => void shutdown("SIGTERM"));

  logger.info("server_started", { version: io.version, ...startedStore(config, services, problems) });
}

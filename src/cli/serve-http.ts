import { systemClock } from "../clock.js";
import { isLoopbackHost, loadConfig, loadHttpConfig, withResourceAudience } from "../config.js";
import { AppError } from "../errors.js";
import { startHttpServer } from "../http/serve-http.js";
import { createLineBuffer, createLogger } from "../log.js";
import { createServices } from "../services.js";
import type { Io } from "./io.js";
import { startedStore } from "./started.js";

/** How long shutdown waits for requests in flight to be answered. */
const SHUTDOWN_GRACE_MS = 10_000;

/**
 * `serve --http`: MCP over Streamable HTTP at `/mcp`, stateless. This entry point owns the
 * repository and the authorizer, which every request's server shares, and closes them once, at
 * shutdown: on SIGINT/SIGTERM it stops accepting, lets the requests in flight finish (at most
 * 10 s), writes the counted key uses, closes the database and exits 0. Resolves with an exit
 * code when it cannot start, with `undefined` once it listens.
 */
export async function serveHttp(io: Io, flags: { host?: string; port?: string }): Promise<number | undefined> {
  const { http, problems: httpProblems } = loadHttpConfig(io.env, flags);
  if (httpProblems.length > 0) {
    for (const problem of httpProblems) io.stderr.write(`api-keys-mcp serve --http: ${problem.message}; ${problem.fix}\n`);
    return 2;
  }
  const { config, problems } = loadConfig({ env: io.env, platform: io.platform, homedir: io.homedir, readFile: io.readFileSync });
  const stderr = createLineBuffer((chunk) => io.stderr.write(chunk));
  const logger = createLogger({ level: config.logLevel, write: stderr.write, defer: stderr.defer });
  io.onExit(stderr.flush);
  for (const problem of problems) logger.error("config_problem", { ...problem });
  if (config.token.value !== undefined || config.token.file !== undefined) {
    // An operator's token must never act for a remote caller.
    logger.warn("operator_token_ignored", { message: "API_KEYS_MCP_TOKEN and API_KEYS_MCP_TOKEN_FILE are not used over HTTP: every request brings its own bearer token." });
  }

  const auth = config.auth && withResourceAudience(config.auth, http.resourceUrl);
  const services = createServices({ config: { ...config, auth }, problems, logger, clock: systemClock });
  const closeServices = async () => {
    if (!(services instanceof AppError)) await services.repository.close();
  };

  let listening;
  try {
    listening = await startHttpServer({ services, logger, version: io.version, http });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const reason = code === "EADDRINUSE" ? "the port is in use" : code === "EADDRNOTAVAIL" ? "no such address on this machine" : code === "EACCES" ? "permission denied" : String(error);
    io.stderr.write(`api-keys-mcp serve --http: cannot listen on ${http.host} port ${http.port}: ${reason}\n`);
    await closeServices();
    stderr.flush();
    return 1;
  }

  let closing = false;
  const shutdown = async (reason: string) => {
    if (closing) return;
    closing = true;
    logger.info("server_stopping", { reason, requests_in_flight: listening.inFlight });
    try {
      if (!(await listening.close(SHUTDOWN_GRACE_MS))) logger.warn("shutdown_abandoned_requests", { grace_ms: SHUTDOWN_GRACE_MS });
      await closeServices();
      logger.info("server_stopped", { reason });
      stderr.flush();
      io.exit(0);
    } catch (error) {
      logger.error("shutdown_failed", { error });
      stderr.flush();
      io.exit(1);
    }
  };
  io.onSignal("SIGINT", () => void shutdown("SIGINT"));
  io.onSignal("SIGTERM", () => void shutdown("SIGTERM"));

  if (http.resourceUrl === undefined && !isLoopbackHost(http.host)) {
    logger.warn("resource_url_not_set", { message: "Set API_KEYS_MCP_RESOURCE_URL to the public URL of /mcp: clients are told the address bound instead." });
  }
  logger.info("server_started", {
    version: io.version,
    transport: "http",
    url: listening.url,
    resource: listening.resourceUrl,
    ...startedStore(config, services, problems),
  });
  return undefined;
}

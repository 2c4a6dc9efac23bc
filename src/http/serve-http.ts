import type { Clock } from "../clock.js";
import type { HttpConfig } from "../config.js";
import { AppError } from "../errors.js";
import type { Logger } from "../log.js";
import { shareServerParts } from "../server.js";
import type { ToolServices } from "../../tools/index.js";
import { createHttpApp } from "./app.js";
import { listenHttp, type HttpTimeouts, type RunningHttpServer } from "./listen.js";

export interface HttpServerOptions {
  /** Owned by the caller, which closes them after the server. */
  services: ToolServices | AppError;
  logger: Logger;
  version: string;
  http: HttpConfig;
  clock?: Clock;
  /** Client timeouts (default 10 s for the headers, 30 s for the request); tests shorten them. */
  timeouts?: HttpTimeouts;
}

export interface StartedHttpServer extends RunningHttpServer {
  /** The URL of `/mcp` on the address actually bound. */
  url: string;
  /** What the metadata document names as the resource: API_KEYS_MCP_RESOURCE_URL, else `url`. */
  resourceUrl: string;
}

/**
 * Listens with the HTTP settings and serves the app. The Host header may name the address bound,
 * `localhost`, `127.0.0.1` or `[::1]` (with any port), or one of API_KEYS_MCP_ALLOWED_HOSTS.
 */
export async function startHttpServer(options: HttpServerOptions): Promise<StartedHttpServer> {
  const { http, services, logger, version, clock } = options;
  const shared = services instanceof AppError ? undefined : await shareServerParts({ services, logger, version, clock, credentials: { from: "transport" } });
  const host = http.host.includes(":") ? `[${http.host}]` : http.host;
  let url = "";
  let resourceUrl = "";
  const running = await listenHttp(http.host, http.port, ({ port }) => {
    url = `http://${host}:${port}/mcp`;
    resourceUrl = http.resourceUrl ?? url;
    return createHttpApp({
      services,
      shared,
      logger,
      version,
      clock,
      resourceUrl,
      allowedHosts: [host.toLowerCase(), "localhost", "127.0.0.1", "[::1]", ...http.allowedHosts],
      allowedOrigins: http.allowedOrigins,
      authorizationServers: http.authorizationServers,
      trustProxy: http.trustProxy,
    });
  }, options.timeouts);
  return Object.assign(running, { url, resourceUrl });
}

import { metadataHandler } from "@modelcontextprotocol/sdk/server/auth/handlers/metadata.js";
import { getOAuthProtectedResourceMetadataUrl } from "@modelcontextprotocol/sdk/server/auth/router.js";
import { hostHeaderValidation } from "@modelcontextprotocol/sdk/server/middleware/hostHeaderValidation.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import express, { type ErrorRequestHandler, type Express, type RequestHandler } from "express";
import { PERMISSIONS } from "../auth/principal.js";
import type { Clock } from "../clock.js";
import { AppError } from "../errors.js";
import { newErrorReference } from "../keys/ids.js";
import type { Logger } from "../log.js";
import { createServer, type SharedServerParts } from "../server.js";
import { TOOL_PERMISSIONS, type ToolServices } from "../../tools/index.js";
import { bearerAuth, requireToolPermissions } from "./bearer.js";
import { bodySizeGuard, originGuard } from "./guards.js";
import { requestLog } from "./request-log.js";
import { refuse } from "./responses.js";

/** The largest request body read: far above any tool call, the same bound as a stdio line. */
export const MAX_BODY_BYTES = 1024 * 1024;

export interface HttpAppOptions {
  /** Shared by every request; owned (and closed) by the entry point. */
  services: ToolServices | AppError;
  /** What the servers built per request share (none while the services are missing). */
  shared?: SharedServerParts;
  logger: Logger;
  version: string;
  clock?: Clock;
  /** The public URL of `/mcp`: the RFC 9728 `resource`, and what the metadata URL is built from. */
  resourceUrl: string;
  /** Names accepted in the `Host` header (IPv6 in brackets); the port is not compared. */
  allowedHosts: readonly string[];
  /** Origins a browser may call `/mcp` from. */
  allowedOrigins: readonly string[];
  /** Authorization servers advertised in the metadata document. */
  authorizationServers: readonly string[];
  /** Proxies trusted to name the client in `X-Forwarded-For` (Express's `trust proxy`). */
  trustProxy: readonly string[];
}

/**
 * MCP over Streamable HTTP, stateless: `POST /mcp` builds a server and a transport for the one
 * request it carries, so any instance can answer any request and nothing is kept between
 * requests but the shared services. Before a request reaches the SDK's transport: the Host and
 * Origin checks, the body limit, the bearer token, and the permission the called tool needs.
 */
export function createHttpApp(options: HttpAppOptions): Express {
  const { services, logger } = options;
  const resourceMetadataUrl = getOAuthProtectedResourceMetadataUrl(new URL(options.resourceUrl));
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  app.set("trust proxy", options.trustProxy.length > 0 ? [...options.trustProxy] : false);

  app.use(requestLog(logger));
  // For load balancers and probes, which call by address: before the Host check, and says
  // nothing but whether this instance can serve.
  app.get("/healthz", (_req, res) => {
    const ready = !(services instanceof AppError);
    res.status(ready ? 200 : 503).json({ status: ready ? "ok" : "unavailable" });
  });
  app.use(hostHeaderValidation([...options.allowedHosts]));

  const metadata = {
    resource: options.resourceUrl,
    ...(options.authorizationServers.length > 0 ? { authorization_servers: [...options.authorizationServers] } : {}),
    scopes_supported: [...PERMISSIONS],
    bearer_methods_supported: ["header"],
    resource_name: "api-keys-mcp",
  };
  // Where the resource URL says, and where a client that reached this server directly looks.
  const metadataPaths = new Set([new URL(resourceMetadataUrl).pathname, "/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"]);
  for (const path of metadataPaths) app.use(path, metadataHandler(metadata));

  app.use("/mcp", originGuard(new Set(options.allowedOrigins)));
  if (services instanceof AppError) {
    app.post("/mcp", (_req, res) => refuse(res, 503, `${services.code}: ${services.publicMessage}`));
  } else {
    const auth = { authorizer: services.authorizer, permissions: TOOL_PERMISSIONS, resourceMetadataUrl, logger };
    app.post(
      "/mcp",
      bodySizeGuard(MAX_BODY_BYTES),
      express.json({ limit: MAX_BODY_BYTES, inflate: false }),
      bearerAuth(auth),
      requireToolPermissions(auth),
      mcpHandler(options, services),
    );
  }
  // Stateless: no event stream to GET, no session to DELETE.
  app.all("/mcp", (_req, res) => refuse(res, 405, "Method not allowed: this server is stateless, use POST.", { Allow: "POST" }));
  app.use((_req, res) => refuse(res, 404, "Not found."));
  app.use(errorHandler(logger));
  return app;
}

/** A new server and transport for each request, on the shared services. */
function mcpHandler(options: HttpAppOptions, services: ToolServices): RequestHandler {
  const { logger } = options;
  return async (req, res) => {
    const { server, close } = createServer({
      services,
      logger,
      version: options.version,
      clock: options.clock,
      credentials: { from: "transport" },
      shared: options.shared,
    });
    server.server.onerror = (error) => logger.warn("protocol_error", { message: error.message });
    // JSON responses rather than an event stream: a stateless server has nothing to stream.
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on("close", () => void close());
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  };
}

/** Body parser refusals with their status, anything else as a 500 with a reference in the log; never a stack. */
function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, _req, res, _next) => {
    const { status, type } = error as { status?: unknown; type?: unknown };
    if (res.headersSent) {
      res.destroy();
    } else if (status === 413) {
      refuse(res, 413, `Request body too large: at most ${MAX_BODY_BYTES} bytes.`, { Connection: "close" });
    } else if (type === "entity.parse.failed") {
      res.status(400).json({ jsonrpc: "2.0", error: { code: -32700, message: "Parse error: the body is not valid JSON." }, id: null });
    } else if (typeof status === "number" && status >= 400 && status < 500) {
      refuse(res, status, "Bad request.");
    } else {
      const reference = newErrorReference();
      logger.error("http_request_failed", { reference, error });
      refuse(res, 500, `Internal error (reference ${reference}).`);
    }
  };
}

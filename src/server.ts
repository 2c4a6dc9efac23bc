import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { jsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/types.js";
import type { Clock } from "./clock.js";
import { systemClock } from "./clock.js";
import type { AppError } from "./errors.js";
import type { Logger } from "./log.js";
import { registerTools, type Credentials, type ToolServices } from "../tools/index.js";

export interface ServerDeps {
  /** The services the tools act through, or why there are none (answered as ERR_CONFIG). */
  services: ToolServices | AppError;
  logger: Logger;
  version: string;
  /** Where callers come from: the `token` argument and the operator's token (stdio), or the transport (HTTP). */
  credentials: Credentials;
  clock?: Clock;
  /**
   * Shared by every server built with it. The SDK builds a JSON Schema validator (an Ajv
   * instance) per server unless given one: about 100 µs each, which a server built per HTTP
   * request would pay every time.
   */
  jsonSchemaValidator?: jsonSchemaValidator;
}

const INSTRUCTIONS = [
  "Manage the API keys of the merchant the user's token belongs to: create_api_key, list_api_keys, get_api_key,",
  "update_api_key, delete_api_key (revoke), rotate_api_key, verify_api_key, and list_audit_events for the history.",
  "A new key's secret appears once, in the create or rotate result: hand it to the user right away and never repeat it.",
  "Keys are referred to by key_id (key_…), never by the secret.",
  "Errors start with a code (ERR_NOT_FOUND, ERR_FORBIDDEN, …) followed by what to do next.",
].join(" ");

/**
 * The MCP server with every tool registered. No I/O of its own: the caller connects a transport.
 * `close()` closes only the server: the services belong to the entry point, which closes them once
 * at shutdown (over HTTP, a server is built for every request and they outlive all of them).
 */
export function createServer(deps: ServerDeps): { server: McpServer; close: () => Promise<void> } {
  const server = new McpServer(
    { name: "api-keys", version: deps.version },
    { instructions: INSTRUCTIONS, ...(deps.jsonSchemaValidator ? { jsonSchemaValidator: deps.jsonSchemaValidator } : {}) },
  );
  registerTools(server, { services: deps.services, logger: deps.logger, clock: deps.clock ?? systemClock, credentials: deps.credentials });
  return { server, close: () => server.close() };
}

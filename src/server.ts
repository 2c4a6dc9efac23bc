import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { Clock } from "./clock.js";
import { systemClock } from "./clock.js";
import { AppError } from "./errors.js";
import type { Logger } from "./log.js";
import { registerTools, type ToolServices } from "../tools/index.js";

export interface ServerDeps {
  /** The services the tools act through, or why there are none (answered as ERR_CONFIG). */
  services: ToolServices | AppError;
  logger: Logger;
  version: string;
  clock?: Clock;
}

const INSTRUCTIONS = [
  "Manage the API keys of the merchant the user's token belongs to: create_api_key, list_api_keys, get_api_key,",
  "update_api_key, delete_api_key (revoke), rotate_api_key, verify_api_key, and list_audit_events for the history.",
  "A new key's secret is handed over once, as the call's delivery says: prefer delivery \"file\" or { \"encrypt_to\": <the user's public JWK> },",
  "which keep it out of this conversation; with \"inline\" it is in the result: hand it to the user right away and never repeat it.",
  "Pass an idempotency_key to create_api_key and rotate_api_key so that a repeated call returns the first call's key instead of a second one.",
  "Keys are referred to by key_id (key_…), never by the secret.",
  "Errors start with a code (ERR_NOT_FOUND, ERR_FORBIDDEN, …) followed by what to do next.",
].join(" ");

/** The MCP server with every tool registered. No I/O of its own: the caller connects a transport. */
export function createServer(deps: ServerDeps): { server: McpServer; close: () => Promise<void> } {
  const server = new McpServer({ name: "api-keys", version: deps.version }, { instructions: INSTRUCTIONS });
  registerTools(server, { services: deps.services, logger: deps.logger, clock: deps.clock ?? systemClock });
  return {
    server,
    async close() {
      await server.close();
      if (!(deps.services instanceof AppError)) await deps.services.repository.close();
    },
  };
}

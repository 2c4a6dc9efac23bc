import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { ListToolsRequestSchema, type JSONRPCMessage, type ListToolsResult } from "@modelcontextprotocol/sdk/types.js";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
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
  /** What servers built per request share (see {@link shareServerParts}). */
  shared?: SharedServerParts;
}

/**
 * What every server built for one transport can share, built once. Over HTTP a server is built
 * for every request, and would otherwise pay, each time: a JSON Schema validator (the SDK builds
 * an Ajv instance per server unless given one, about 130 µs), and for `tools/list` the
 * conversion of the eight tools' zod schemas to JSON Schema (2.5 to 4.5 ms, measured), whose
 * answer never changes.
 */
export interface SharedServerParts {
  jsonSchemaValidator: jsonSchemaValidator;
  toolList: ListToolsResult;
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

/**
 * The MCP server with every tool registered. No I/O of its own: the caller connects a transport.
 * `close()` closes only the server: the services belong to the entry point, which closes them once
 * at shutdown (over HTTP, a server is built for every request and they outlive all of them).
 */
export function createServer(deps: ServerDeps): { server: McpServer; close: () => Promise<void> } {
  const { shared } = deps;
  const server = new McpServer(
    { name: "api-keys", version: deps.version },
    { instructions: INSTRUCTIONS, ...(shared ? { jsonSchemaValidator: shared.jsonSchemaValidator } : {}) },
  );
  registerTools(server, { services: deps.services, logger: deps.logger, clock: deps.clock ?? systemClock, credentials: deps.credentials });
  if (shared) server.server.setRequestHandler(ListToolsRequestSchema, () => shared.toolList);
  return { server, close: () => server.close() };
}

/**
 * Builds the parts servers made with `deps` can share: the `tools/list` answer is the one a
 * server built the same way gives, asked once over an in-memory transport and kept as sent.
 */
export async function shareServerParts(deps: Omit<ServerDeps, "shared">): Promise<SharedServerParts> {
  const { server, close } = createServer(deps);
  const [client, transport] = InMemoryTransport.createLinkedPair();
  const answer = new Promise<JSONRPCMessage>((resolve) => (client.onmessage = resolve));
  await server.connect(transport);
  await client.start();
  await client.send({ jsonrpc: "2.0", id: 1, method: "tools/list" });
  const message = await answer;
  await client.close();
  await close();
  if (!("result" in message)) throw new Error("the tool list could not be built");
  return { jsonSchemaValidator: new AjvJsonSchemaValidator(), toolList: message.result as ListToolsResult };
}

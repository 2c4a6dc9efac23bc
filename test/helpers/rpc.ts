import { LATEST_PROTOCOL_VERSION } from "@modelcontextprotocol/sdk/types.js";
import type { RawServer } from "./spawn.js";

export type Json = Record<string, unknown>;

/** Every tool the server registers, sorted: what tools/list must answer, written out independently of tools/. */
export const TOOL_NAMES = [
  "create_api_key",
  "delete_api_key",
  "get_api_key",
  "list_api_keys",
  "list_audit_events",
  "rotate_api_key",
  "update_api_key",
  "verify_api_key",
];

/** A key id no test ever creates. */
const UNKNOWN_KEY_ID = "key_AAAAAAAAAAAAAAAAAAAA";

/** One well-formed call to each tool, about a key that does not exist: for "every tool answers …" checks. */
export const ONE_CALL_PER_TOOL: [string, Json][] = [
  ["create_api_key", { name: "x" }],
  ["list_api_keys", {}],
  ["get_api_key", { key_id: UNKNOWN_KEY_ID }],
  ["update_api_key", { key_id: UNKNOWN_KEY_ID, name: "y" }],
  ["delete_api_key", { key_id: UNKNOWN_KEY_ID }],
  ["verify_api_key", { api_key: "sk_test_not-a-real-key" }],
  ["rotate_api_key", { key_id: UNKNOWN_KEY_ID, grace_period: "1h" }],
  ["list_audit_events", {}],
];

/** A tools/call result as it travels over the wire. */
export interface RawToolResult {
  isError?: boolean;
  content: { text: string }[];
  structuredContent?: Json;
}

/** The JSON of a request line, for tests that write many lines at once or mangle them. */
export function requestLine(id: number | string, method: string, params?: Json): string {
  return JSON.stringify({ jsonrpc: "2.0", id, method, ...(params === undefined ? {} : { params }) });
}

/** A raw JSON-RPC session over a spawned server's pipes: initialize, then numbered requests, each awaited. */
export function session(server: RawServer, firstId = 1) {
  let nextId = firstId;
  const request = async (method: string, params?: Json, timeoutMs?: number) => {
    const id = nextId++;
    server.send(requestLine(id, method, params));
    return server.response(id, timeoutMs);
  };
  return {
    async initialize() {
      const reply = await request("initialize", {
        protocolVersion: LATEST_PROTOCOL_VERSION,
        capabilities: {},
        clientInfo: { name: "raw-stdio-test", version: "0.0.0" },
      });
      server.send(JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }));
      return reply;
    },
    request,
    /** tools/call; resolves with the result (or throws on a JSON-RPC error). */
    async call(name: string, args: Json = {}, timeoutMs?: number): Promise<RawToolResult> {
      const reply = await request("tools/call", { name, arguments: args }, timeoutMs);
      if (!("result" in reply)) throw new Error(`tools/call ${name} answered ${JSON.stringify(reply.error)}`);
      return reply.result as RawToolResult;
    },
  };
}

/** Every non-empty line parsed as JSON. */
export const parseLines = (lines: string[]): Json[] => lines.filter((line) => line !== "").map((line) => JSON.parse(line) as Json);

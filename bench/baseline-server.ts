/**
 * The baseline for the stdio measures: a bare McpServer with one no-op tool whose input and
 * output schemas are exactly get_api_key's, over the same transport. Whatever our server spends
 * beyond this is ours to account for.
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import * as z from "zod";
import { keyIdField, keyViewSchema, tokenField } from "../tools/schemas.js";

const view = {
  key_id: "key_0000000000000000000A",
  name: "baseline",
  description: null,
  type: "secret" as const,
  environment: "test" as const,
  prefix: "sk_test_abcd",
  status: "active" as const,
  created_at: "2026-01-01T00:00:00.000Z",
  updated_at: "2026-01-01T00:00:00.000Z",
  expires_at: null,
  revoked_at: null,
  last_used_at: null,
  usage_count: 0,
  created_by: "baseline",
  scopes: [],
  rotated_from: null,
  rotated_to: null,
};

const server = new McpServer({ name: "baseline", version: "0.0.0" });
server.registerTool(
  "noop",
  {
    title: "No-op",
    description: "Returns a fixed key view.",
    inputSchema: z.strictObject({ key_id: keyIdField, token: tokenField }),
    outputSchema: z.object({ key: keyViewSchema }),
    annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  },
  async () => {
    const output = { key: { ...view } };
    return { content: [{ type: "text", text: JSON.stringify(output) }], structuredContent: output };
  },
);
await server.connect(new StdioServerTransport());
process.stdin.on("end", () => process.exit(0));

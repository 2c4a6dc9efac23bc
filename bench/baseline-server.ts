/**
 * The baseline for the stdio measures: a bare McpServer with one no-op tool whose input and
 * output schemas are exactly get_api_key's, over the same transport. Whatever our server spends
 * beyond this is ours to account for.
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import * as z from "zod";
import { keyIdField, keyViewSchema, tokenField } from "../tools/schemas.js";
import { BASELINE_VIEW } from "./baseline-view.js";

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
    const output = { key: { ...BASELINE_VIEW } };
    return { content: [{ type: "text", text: JSON.stringify(output) }], structuredContent: output };
  },
);
await server.connect(new StdioServerTransport());
process.stdin.on("end", () => process.exit(0));

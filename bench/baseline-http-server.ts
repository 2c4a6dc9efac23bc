/**
 * The baseline for the HTTP measures: a bare stateless Streamable HTTP server as the SDK's own
 * example builds it (createMcpExpressApp, a new McpServer and transport per request), with one
 * no-op tool whose input and output schemas are exactly get_api_key's over HTTP (no token
 * field), JSON responses and a shared schema validator like ours, so that it does the least
 * possible for the same exchange. Prints its /mcp URL on stdout.
 */
import type { AddressInfo } from "node:net";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { createMcpExpressApp } from "@modelcontextprotocol/sdk/server/express.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import * as z from "zod";
import { keyIdField, keyViewSchema } from "../tools/schemas.js";
import { BASELINE_VIEW } from "./baseline-view.js";

const inputSchema = z.strictObject({ key_id: keyIdField });
const outputSchema = z.object({ key: keyViewSchema });
const jsonSchemaValidator = new AjvJsonSchemaValidator();

const app = createMcpExpressApp();
app.post("/mcp", async (req, res) => {
  const server = new McpServer({ name: "baseline", version: "0.0.0" }, { jsonSchemaValidator });
  server.registerTool(
    "noop",
    {
      title: "No-op",
      description: "Returns a fixed key view.",
      inputSchema,
      outputSchema,
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    async () => {
      const output = { key: { ...BASELINE_VIEW } };
      return { content: [{ type: "text", text: JSON.stringify(output) }], structuredContent: output };
    },
  );
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.on("close", () => void server.close());
  await server.connect(transport);
  await transport.handleRequest(req, res, req.body);
});
const listener = app.listen(0, "127.0.0.1", () => {
  process.stdout.write(`http://127.0.0.1:${(listener.address() as AddressInfo).port}/mcp\n`);
});
process.on("SIGTERM", () => listener.close(() => process.exit(0)));

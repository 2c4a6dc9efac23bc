import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { Permission } from "../src/auth/principal.js";
import { registerCreateApiKeyTool } from "./create-api-key.js";
import { registerDeleteApiKeyTool } from "./delete-api-key.js";
import type { ToolDeps } from "./define-tool.js";
import { registerGetApiKeyTool } from "./get-api-key.js";
import { registerListApiKeysTool } from "./list-api-keys.js";
import { registerListAuditEventsTool } from "./list-audit-events.js";
import { registerRotateApiKeyTool } from "./rotate-api-key.js";
import { registerUpdateApiKeyTool } from "./update-api-key.js";
import { registerVerifyApiKeyTool } from "./verify-api-key.js";

export type { Credentials, ToolDeps, ToolServices } from "./define-tool.js";

const TOOLS = [
  registerCreateApiKeyTool,
  registerListApiKeysTool,
  registerGetApiKeyTool,
  registerUpdateApiKeyTool,
  registerDeleteApiKeyTool,
  registerVerifyApiKeyTool,
  registerRotateApiKeyTool,
  registerListAuditEventsTool,
];

/** The permission each tool needs, by tool name: what HTTP checks before a call to answer 403. */
export const TOOL_PERMISSIONS: ReadonlyMap<string, Permission> = new Map(TOOLS.map((tool) => [tool.toolName, tool.permission]));

/** Registers every tool on `server`. */
export function registerTools(server: McpServer, deps: ToolDeps): void {
  for (const register of TOOLS) register(server, deps);
}

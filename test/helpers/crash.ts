import { requestLine, type Json, type RawToolResult } from "./rpc.js";
import type { RawServer, SpawnedClient } from "./spawn.js";

/** A key whose create answer a client received in full. */
export interface Acknowledged {
  keyId: string;
  plaintext: string;
}

/**
 * Sends `count` create_api_key requests, ids from `firstId`, in one write: all of them are in the
 * server's hands at once, so a kill lands with some answered and some in flight.
 */
export function sendCreates(server: RawServer, firstId: number, count: number, name: (i: number) => string): void {
  const lines = Array.from({ length: count }, (_, i) => requestLine(firstId + i, "tools/call", { name: "create_api_key", arguments: { name: name(i) } }));
  server.child.stdin.write(`${lines.join("\n")}\n`);
}

/** The create results a client had fully received when the process died (ids from `firstId`). */
export function acknowledgedCreates(server: RawServer, firstId: number): { acknowledged: Acknowledged[]; errors: string[] } {
  const acknowledged: Acknowledged[] = [];
  const errors: string[] = [];
  for (const line of server.stdoutLines) {
    const message = JSON.parse(line) as Json;
    if (typeof message.id !== "number" || message.id < firstId) continue;
    const result = message.result as RawToolResult | undefined;
    if (!result || result.isError) {
      errors.push(result ? result.content.map((part) => part.text).join(" ") : JSON.stringify(message.error));
      continue;
    }
    const output = result.structuredContent as { key: { key_id: string }; api_key: string };
    acknowledged.push({ keyId: output.key.key_id, plaintext: output.api_key });
  }
  return { acknowledged, errors };
}

/** How many keys `list_api_keys` shows, page after page. */
export async function countListedKeys(client: SpawnedClient): Promise<number> {
  let listed = 0;
  let cursor: string | null = null;
  do {
    const page = await client.call("list_api_keys", { limit: 100, ...(cursor === null ? {} : { cursor }) });
    if (!page.ok) throw new Error(`list_api_keys failed: ${page.code}`);
    listed += page.data.keys.length as number;
    cursor = page.data.next_cursor as string | null;
  } while (cursor !== null);
  return listed;
}

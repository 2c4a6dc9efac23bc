import type { Response } from "express";

/**
 * Answers with a JSON-RPC error and no id, the shape the SDK's transport uses for a request it
 * refuses before reading it. `message` is fixed text, never anything the client sent.
 */
export function refuse(res: Response, status: number, message: string, headers: Record<string, string> = {}): void {
  res
    .status(status)
    .set(headers)
    .json({ jsonrpc: "2.0", error: { code: -32000, message }, id: null });
}

/**
 * Text for a header parameter (`error_description`): printable ASCII without quotes or
 * backslashes, so that it can neither break the header's syntax nor be refused by Node.
 */
export function headerText(text: string): string {
  return text.replace(/[^\x20-\x7E]|["\\]/g, " ").trim();
}

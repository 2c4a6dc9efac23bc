import { KEY_ID_PATTERN } from "../keys/ids.js";

/** A `tools/call` found in a request body, as far as checks made before the SDK reads it need. */
export interface ToolCall {
  /** A tool this server has (names it does not know are left to the SDK to refuse). */
  name: string;
  /** The `key_id` argument, when it is shaped like one. */
  keyId?: string;
}

/** The messages of a body: one JSON-RPC message, or a batch. */
function messages(body: unknown): Record<string, unknown>[] {
  const list = Array.isArray(body) ? body : [body];
  return list.filter((message): message is Record<string, unknown> => typeof message === "object" && message !== null);
}

/** The calls in `body` of tools that `known` names. Nothing from the body is trusted beyond that. */
export function toolCalls(body: unknown, known: ReadonlyMap<string, unknown>): ToolCall[] {
  const calls: ToolCall[] = [];
  for (const message of messages(body)) {
    if (message.method !== "tools/call") continue;
    const params = message.params as { name?: unknown; arguments?: { key_id?: unknown } } | undefined;
    if (typeof params?.name !== "string" || !known.has(params.name)) continue;
    const keyId = params.arguments?.key_id;
    calls.push({ name: params.name, ...(typeof keyId === "string" && KEY_ID_PATTERN.test(keyId) ? { keyId } : {}) });
  }
  return calls;
}

/**
 * What a denial before the call records as its `tool`: the tool called, else the JSON-RPC method
 * (`tools/list`, `initialize`), else "unknown". Only names of bounded, plain shape are taken: an
 * audit row must not carry whatever a client put in its body.
 */
export function describeRequest(body: unknown, known: ReadonlyMap<string, unknown>): { tool: string; keyId?: string } {
  const [call] = toolCalls(body, known);
  if (call) return { tool: call.name, ...(call.keyId === undefined ? {} : { keyId: call.keyId }) };
  const method = messages(body)[0]?.method;
  return { tool: typeof method === "string" && /^[a-z][a-z/_]{0,63}$/i.test(method) ? method : "unknown" };
}

import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { CallToolResult, ServerNotification, ServerRequest } from "@modelcontextprotocol/sdk/types.js";
import * as z from "zod";
import { auditedClient } from "../src/audit/client.js";
import type { Actor, ClientInfo } from "../src/audit/events.js";
import { principalOf } from "../src/auth/auth-info.js";
import type { Authorizer, CallRequest } from "../src/auth/authorizer.js";
import type { Permission, Principal } from "../src/auth/principal.js";
import type { Clock } from "../src/clock.js";
import type { DeliverySettings } from "../src/delivery/policy.js";
import { AppError, toAppError } from "../src/errors.js";
import { newErrorReference } from "../src/keys/ids.js";
import type { Logger } from "../src/log.js";
import type { KeyRepository } from "../src/store/repository.js";
import { confirmationFor, type Confirm } from "./confirm.js";
import { tokenField } from "./schemas.js";

/** What the tools act through. */
export interface ToolServices {
  repository: KeyRepository;
  authorizer: Authorizer;
  /** How new keys are handed over (the operator's delivery settings). */
  delivery: DeliverySettings;
}

/**
 * Where the caller of a call comes from: a transport decision.
 * - `argument` (stdio): the call's optional `token` argument, else the operator's token from the
 *   environment or a file; every tool takes a `token` field.
 * - `transport` (HTTP): the transport verified the `Authorization` header before the call and
 *   hands over the principal in the SDK's request context (`extra.authInfo`); the tools have no
 *   `token` field, and the operator's token is never consulted.
 */
export type Credentials =
  | { from: "argument"; resolveToken: (argument: string | undefined) => Promise<string> }
  | { from: "transport" };

export interface ToolDeps {
  /** The services, or why the server cannot serve (ERR_CONFIG), answered to every call. */
  services: ToolServices | AppError;
  logger: Logger;
  clock: Clock;
  credentials: Credentials;
}

/** Registers one tool; also names it and the permission it needs, for checks made before the call. */
export interface ToolRegistration {
  (server: McpServer, deps: ToolDeps): void;
  readonly toolName: string;
  readonly permission: Permission;
}

export interface ToolContext {
  principal: Principal;
  /** Who acts, as the audit log records it: the principal and the MCP client the call came through. */
  actor: Actor;
  repository: KeyRepository;
  delivery: DeliverySettings;
  /** One reading of the clock per call. */
  now: number;
  /** Asks the user to confirm, when the client declared elicitation; absent otherwise. */
  confirm?: Confirm;
}

export interface ToolReply<Output> {
  output: Output;
  /** Text shown to the model before the JSON, e.g. "store this key now". */
  notice?: string;
  /** The key the call created, for the log line. */
  keyId?: string;
}

export interface ToolSpec<Input extends z.ZodRawShape, Output extends z.ZodRawShape> {
  name: string;
  title: string;
  /** Written for a model: what it does, the permission it needs, what to do next. */
  description: string;
  permission: Permission;
  input: Input;
  output: Output;
  annotations: { readOnlyHint: boolean; destructiveHint: boolean; idempotentHint: boolean };
  run(args: z.output<z.ZodObject<Input>>, context: ToolContext): Promise<ToolReply<z.output<z.ZodObject<Output>>>>;
}

/**
 * Turns a tool spec into `register(server, deps)`. Everything every tool shares happens here,
 * once: strict input (with the optional `token` where the transport takes it from arguments),
 * authorisation, one log line per call, and the mapping of anything thrown to a coded error
 * result with text content only (E1, E2).
 */
export function defineTool<Input extends z.ZodRawShape, Output extends z.ZodRawShape>(spec: ToolSpec<Input, Output>): ToolRegistration {
  // Built once per tool, not per server: over HTTP a server is built for every request.
  const inputSchemas = { argument: z.strictObject({ ...spec.input, token: tokenField }), transport: z.strictObject(spec.input) };
  const outputSchema = z.object(spec.output);

  const register = (server: McpServer, deps: ToolDeps) => {
    // A connection's client is known once it has initialized, and never changes: cleaned once.
    let auditedClientOf: ClientInfo | undefined;
    const handle = async (args: Record<string, unknown>, extra: RequestHandlerExtra<ServerRequest, ServerNotification>): Promise<CallToolResult> => {
      const started = performance.now();
      // The token is split off here so that nothing downstream can log or store it.
      const { token, ...input } = args as { token?: string } & Record<string, unknown>;
      let keyId = typeof input.key_id === "string" ? input.key_id : undefined;
      let principal: Principal | undefined;
      // What this connection's client declared in `initialize`; null on a server that saw none.
      const client = (auditedClientOf ??= auditedClient(server.server.getClientVersion()) ?? undefined) ?? null;
      let outcome = "OK";
      try {
        const services = deps.services;
        if (services instanceof AppError) throw services;
        principal = await authorize(services.authorizer, deps.credentials, token, extra.authInfo, {
          permission: spec.permission,
          tool: spec.name,
          keyId,
          client,
        });
        const reply = await spec.run(input as z.output<z.ZodObject<Input>>, {
          principal,
          actor: { tenantId: principal.tenantId, subject: principal.subject, client },
          repository: services.repository,
          delivery: services.delivery,
          now: deps.clock(),
          confirm: confirmationFor(server, extra, (error) => deps.logger.warn("confirmation_failed", { tool: spec.name, error })),
        });
        keyId ??= reply.keyId;
        const json = JSON.stringify(reply.output);
        return {
          content: reply.notice ? [{ type: "text", text: reply.notice }, { type: "text", text: json }] : [{ type: "text", text: json }],
          structuredContent: reply.output,
        };
      } catch (error) {
        const failure = toAppError(error, newErrorReference);
        outcome = failure.code;
        if (failure.code === "ERR_INTERNAL" || failure.code === "ERR_BUSY") {
          deps.logger.error("tool_failed", { tool: spec.name, code: failure.code, reference: failure.reference, error: failure.cause });
        }
        return { isError: true, content: [{ type: "text", text: `${failure.code}: ${failure.publicMessage}` }] };
      } finally {
        deps.logger.info("tool_call", {
          tool: spec.name,
          outcome,
          duration_ms: Math.round((performance.now() - started) * 1000) / 1000,
          tenant: principal?.tenantId,
          subject: principal?.subject,
          key_id: keyId,
          client: client && `${client.name}/${client.version}`,
        });
      }
    };

    server.registerTool(
      spec.name,
      {
        title: spec.title,
        description: spec.description,
        inputSchema: inputSchemas[deps.credentials.from],
        outputSchema,
        annotations: { title: spec.title, ...spec.annotations, openWorldHint: false },
      },
      handle,
    );
  };
  return Object.assign(register, { toolName: spec.name, permission: spec.permission });
}

/** Who is calling, established the way the transport provides the caller. */
async function authorize(
  authorizer: Authorizer,
  credentials: Credentials,
  token: string | undefined,
  authInfo: AuthInfo | undefined,
  call: CallRequest,
): Promise<Principal> {
  if (credentials.from === "argument") return authorizer.authorize(() => credentials.resolveToken(token), call);
  const principal = principalOf(authInfo);
  // The transport refuses unauthenticated requests before they reach a tool; never fall back to anything.
  if (!principal) throw new AppError("ERR_AUTH_MISSING", "No verified token came with this request. Send the user's token in the Authorization header (Bearer).");
  return authorizer.admit(principal, call);
}

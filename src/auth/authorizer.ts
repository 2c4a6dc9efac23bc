import type { Clock } from "../clock.js";
import { AppError, type ErrorCode } from "../errors.js";
import type { Logger } from "../log.js";
import type { ClientInfo, Denial } from "../audit/events.js";
import { principalFromClaims, type Permission, type Principal, type PrincipalOptions } from "./principal.js";
import { RateLimiter, type Admission } from "./rate-limit.js";
import type { VerifyToken } from "./verifier.js";

/** A tool call to admit: what it needs, and what a denial records. */
export interface CallRequest {
  permission: Permission;
  tool: string;
  /** The key the call is about, recorded with a denial. */
  keyId?: string;
  /** The MCP client the call came through, recorded with a denial. */
  client?: ClientInfo | null;
}

/** An attempt to authenticate: who tries (for the failure limit), and what a denial records. */
export interface AuthenticationAttempt {
  /** Where the attempt comes from, for the failure limit: a client address over HTTP, the one local client on stdio. */
  address: string;
  tool: string;
  keyId?: string;
  /** The MCP client the call came through, when known, recorded with a denial. */
  client?: ClientInfo | null;
}

/** The one client address of a stdio server: whoever started it. */
export const LOCAL_CLIENT = "local";

export interface AuthorizerOptions extends PrincipalOptions {
  verifyToken: VerifyToken;
  clock: Clock;
  limits: { read: number; write: number; authFailures: number };
  recordDenial: (denial: Denial) => Promise<void>;
  logger: Logger;
}

type Authentication = { ok: true; principal: Principal } | { ok: false; error: AppError; actor: string | null };

/**
 * Denials recorded in the audit log per caller and minute (and at most this many at once). A
 * caller refused again and again would otherwise add a row per call for as long as it keeps
 * calling; past the bound, denials are counted, and the next one recorded says how many were
 * left out.
 */
const DENIALS_RECORDED_PER_MINUTE = 5;
/** Callers whose left-out denials are counted at once; the oldest count is dropped first. */
const OMITTED_COUNTS_KEPT = 10_000;

/** Verified tokens remembered at once; each entry also ends when its verdict does (see VerifiedToken). */
const VERIFIED_CACHE_SIZE = 1024;

const AUTHENTICATION_FAILURES: ReadonlySet<ErrorCode> = new Set(["ERR_AUTH_MISSING", "ERR_AUTH_INVALID", "ERR_AUTH_EXPIRED"]);

/**
 * Decides whether a call may proceed, and as whom: token (A1) → verified claims (A2) → principal
 * (A3, A4) → rate limit (A7) → permission (A6). Where the token comes from is the transport's
 * business: stdio resolves it per call (argument, environment, file), HTTP takes the bearer
 * header and admits the principal it verified. Refusals are audited as `auth.denied`, except
 * those of a rate limiter: recording those would turn a flood into database writes.
 */
export class Authorizer {
  readonly #options: AuthorizerOptions;
  readonly #limiters: Record<"read" | "write" | "failures", RateLimiter>;
  readonly #verified = new Map<string, { principal: Principal; expiresAt: number }>();
  readonly #denials: RateLimiter;
  readonly #omitted = new Map<string, number>();

  constructor(options: AuthorizerOptions) {
    this.#options = options;
    this.#limiters = {
      read: new RateLimiter(options.limits.read, options.clock),
      write: new RateLimiter(options.limits.write, options.clock),
      failures: new RateLimiter(options.limits.authFailures, options.clock),
    };
    this.#denials = new RateLimiter(DENIALS_RECORDED_PER_MINUTE, options.clock);
  }

  /** The whole check for one call on stdio, whose one client is {@link LOCAL_CLIENT}. */
  async authorize(token: () => Promise<string>, call: CallRequest): Promise<Principal> {
    const principal = await this.authenticate(token, { address: LOCAL_CLIENT, tool: call.tool, keyId: call.keyId, client: call.client });
    return this.admit(principal, call);
  }

  /**
   * Verifies the token `token()` yields (it throws ERR_AUTH_MISSING when there is none) and maps
   * it to a principal. A failure counts against `attempt.address`; past the limit it answers
   * ERR_RATE_LIMITED instead, unaudited. Failures are limited per client so that one client
   * cannot lock out the others.
   */
  async authenticate(token: () => Promise<string>, attempt: AuthenticationAttempt): Promise<Principal> {
    const authentication = await this.#authenticate(token);
    if (authentication.ok) return authentication.principal;
    const admission = this.#limiters.failures.take(attempt.address);
    if (!admission.ok) throw tooManyFailures(admission.retryAfterSeconds);
    await this.#audit(attempt, authentication.error.code, null, authentication.actor);
    throw authentication.error;
  }

  /**
   * How long `address` must wait before its failures are admitted again (0: it may try now).
   * Lets a transport refuse a client over its limit before spending any work on its token.
   */
  failureBackoffSeconds(address: string): number {
    const admission: Admission = this.#limiters.failures.peek(address);
    return admission.ok ? 0 : admission.retryAfterSeconds;
  }

  /** The per-principal rate limit, then the permission, for a principal already authenticated. */
  async admit(principal: Principal, call: CallRequest): Promise<Principal> {
    const admission = this.#takeCall(principal, call);
    if (!admission.ok) {
      const kind = call.permission === "api_keys:write" ? "write" : "read";
      throw new AppError("ERR_RATE_LIMITED", `Too many ${kind} calls for this user. Wait ${admission.retryAfterSeconds} seconds, then retry.`);
    }
    if (!principal.permissions.has(call.permission)) throw await this.#forbidden(principal, call);
    return principal;
  }

  /**
   * For a check made before the call (HTTP answers 403 with it): the audited ERR_FORBIDDEN when
   * the principal lacks the permission, charged to its rate limit as the refused call would be;
   * undefined when it has the permission (nothing is taken: the call is admitted as usual), or
   * when it is over its limit (the call then answers ERR_RATE_LIMITED itself, unaudited).
   */
  async refusePermission(principal: Principal, call: CallRequest): Promise<AppError | undefined> {
    if (principal.permissions.has(call.permission) || !this.#takeCall(principal, call).ok) return undefined;
    return this.#forbidden(principal, call);
  }

  #takeCall(principal: Principal, call: CallRequest): Admission {
    const kind = call.permission === "api_keys:write" ? "write" : "read";
    return this.#limiters[kind].take(`${principal.tenantId}\u0000${principal.subject}`);
  }

  async #forbidden(principal: Principal, call: CallRequest): Promise<AppError> {
    await this.#audit(call, "ERR_FORBIDDEN", principal.tenantId, principal.subject);
    return new AppError(
      "ERR_FORBIDDEN",
      `This token does not grant ${call.permission}, which ${call.tool} needs. Ask the user for a token with that permission (for Hyperswitch, a merchant admin or developer role).`,
    );
  }

  async #authenticate(obtain: () => Promise<string>): Promise<Authentication> {
    let token: string;
    let verified;
    try {
      token = await obtain();
      const cached = this.#verified.get(token);
      if (cached && this.#options.clock() < cached.expiresAt) return { ok: true, principal: cached.principal };
      if (cached) this.#verified.delete(token);
      verified = await this.#options.verifyToken(token);
    } catch (error) {
      return refusal(error);
    }
    const result = principalFromClaims(verified.claims, this.#options);
    if (!result.ok) return { ok: false, error: result.error, actor: result.subject };

    // Bounded, oldest entry out first. An entry ends when the verdict does: at the token's
    // `exp`, at its `iat` plus the maximum token age, and, with a JWKS, when the copy of the key
    // set that checked it ages out, so a withdrawn key stops working within one cache period.
    if (verified.validUntil > this.#options.clock()) {
      if (this.#verified.size >= VERIFIED_CACHE_SIZE) this.#verified.delete(this.#verified.keys().next().value!);
      this.#verified.set(token, { principal: result.principal, expiresAt: verified.validUntil });
    }
    return result;
  }

  async #audit(
    request: { tool: string; keyId?: string; address?: string; client?: ClientInfo | null },
    reason: ErrorCode,
    tenantId: string | null,
    actor: string | null,
  ): Promise<void> {
    // Bounded per caller: the user when the token names one, else the address it came from.
    const caller = actor !== null ? `${tenantId ?? ""}\u0000${actor}` : `\u0001${request.address ?? ""}`;
    const omitted = this.#omitted.get(caller) ?? 0;
    if (!this.#denials.take(caller).ok) {
      this.#omitted.delete(caller);
      if (this.#omitted.size >= OMITTED_COUNTS_KEPT) this.#omitted.delete(this.#omitted.keys().next().value!);
      this.#omitted.set(caller, omitted + 1);
      return;
    }
    this.#omitted.delete(caller);
    try {
      const at = this.#options.clock();
      await this.#options.recordDenial({ tool: request.tool, reason, tenantId, actor, keyId: request.keyId ?? null, at, client: request.client ?? null, ...(omitted ? { omitted } : {}) });
    } catch (error) {
      // The caller gets the denial either way; a lost audit row must at least reach the log.
      this.#options.logger.error("audit_write_failed", { tool: request.tool, reason, omitted, error });
    }
  }
}

/** An authentication failure as a value; anything else (a JWKS outage, ERR_CONFIG) is rethrown. */
function refusal(error: unknown): Authentication {
  // No token, or one that does not verify: nobody can be named.
  if (error instanceof AppError && AUTHENTICATION_FAILURES.has(error.code)) return { ok: false, error, actor: null };
  throw error;
}

function tooManyFailures(retryAfterSeconds: number): AppError {
  return new AppError("ERR_RATE_LIMITED", `Too many failed authentications. Wait ${retryAfterSeconds} seconds, then retry with a valid token.`);
}

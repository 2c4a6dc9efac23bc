import type { Clock } from "../clock.js";
import { AppError, type ErrorCode } from "../errors.js";
import type { Logger } from "../log.js";
import type { ClientInfo, Denial } from "../audit/events.js";
import { principalFromClaims, type Permission, type Principal, type PrincipalOptions } from "./principal.js";
import { RateLimiter } from "./rate-limit.js";
import type { VerifyToken } from "./verifier.js";

export interface AuthorizeRequest {
  /** The call's `token` argument, if any. */
  token: string | undefined;
  permission: Permission;
  tool: string;
  /** The key the call is about, recorded with a denial. */
  keyId?: string;
  /** The MCP client the call came through, recorded with a denial. */
  client?: ClientInfo | null;
}

export interface AuthorizerOptions extends PrincipalOptions {
  resolveToken: (argument: string | undefined) => Promise<string>;
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
 * (A3, A4) → rate limit (A7) → permission (A6). Refusals are audited as `auth.denied`, except
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

  async authorize(request: AuthorizeRequest): Promise<Principal> {
    const authentication = await this.#authenticate(request.token);
    if (!authentication.ok) {
      // One bucket: a stdio server has exactly one client.
      const admission = this.#limiters.failures.take("local");
      if (!admission.ok) {
        throw new AppError("ERR_RATE_LIMITED", `Too many failed authentications. Wait ${admission.retryAfterSeconds} seconds, then retry with a valid token.`);
      }
      await this.#audit(request, authentication.error.code, null, authentication.actor);
      throw authentication.error;
    }

    const { principal } = authentication;
    const kind = request.permission === "api_keys:write" ? "write" : "read";
    const admission = this.#limiters[kind].take(`${principal.tenantId}\u0000${principal.subject}`);
    if (!admission.ok) {
      throw new AppError("ERR_RATE_LIMITED", `Too many ${kind} calls for this user. Wait ${admission.retryAfterSeconds} seconds, then retry.`);
    }

    if (!principal.permissions.has(request.permission)) {
      await this.#audit(request, "ERR_FORBIDDEN", principal.tenantId, principal.subject);
      throw new AppError(
        "ERR_FORBIDDEN",
        `This token does not grant ${request.permission}, which ${request.tool} needs. Ask the user for a token with that permission (for Hyperswitch, a merchant admin or developer role).`,
      );
    }
    return principal;
  }

  async #authenticate(argument: string | undefined): Promise<Authentication> {
    let token: string;
    let verified;
    try {
      token = await this.#options.resolveToken(argument);
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

  async #audit(request: AuthorizeRequest, reason: ErrorCode, tenantId: string | null, actor: string | null): Promise<void> {
    const caller = `${tenantId ?? ""}\u0000${actor ?? ""}`;
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

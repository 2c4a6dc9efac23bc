import { InsufficientScopeError, InvalidTokenError, ServerError } from "@modelcontextprotocol/sdk/server/auth/errors.js";
import { requireBearerAuth } from "@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js";
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import type { RequestHandler, Response } from "express";
import { decodeJwt } from "jose";
import { principalOf, toAuthInfo } from "../auth/auth-info.js";
import type { AuthenticationAttempt, Authorizer } from "../auth/authorizer.js";
import type { Permission } from "../auth/principal.js";
import { CLOCK_TOLERANCE_SECONDS } from "../auth/verifier.js";
import { AppError, toAppError, type ErrorCode } from "../errors.js";
import { newErrorReference } from "../keys/ids.js";
import type { Logger } from "../log.js";
import { clientKey } from "./client-address.js";
import { describeRequest, toolCalls } from "./json-rpc-body.js";
import { headerText, refuse } from "./responses.js";

export interface BearerOptions {
  authorizer: Authorizer;
  /** The tools and the permission each needs. */
  permissions: ReadonlyMap<string, Permission>;
  /** RFC 9728 metadata URL, named in every `WWW-Authenticate`. */
  resourceMetadataUrl: string;
  logger: Logger;
}

/** Failures answered 401 `invalid_token`: the client should get another token. */
const TOKEN_REFUSALS: ReadonlySet<ErrorCode> = new Set(["ERR_AUTH_INVALID", "ERR_AUTH_EXPIRED", "ERR_FORBIDDEN", "ERR_RATE_LIMITED"]);

/**
 * Who is calling: the `Authorization: Bearer` header and nothing else (never the operator's
 * token). Verification is the stdio one (jose, the principal mapping, the verified-token cache),
 * and the SDK's `requireBearerAuth` answers 401 `invalid_token` and puts the caller in
 * `req.auth`, which reaches the tools as `extra.authInfo`.
 *
 * Written around the SDK's middleware, for three things it does not do: a request with no
 * token at all gets a bare `Bearer resource_metadata=…` challenge (RFC 6750 §3.1: no error
 * code when the client sent nothing); failures are counted per client address, audited as on
 * stdio, and a client past the limit gets 429 with `Retry-After` before its token costs any
 * work; and the audit row names the tool the body calls, so the body is parsed first.
 */
export function bearerAuth(options: BearerOptions): RequestHandler {
  const { authorizer, resourceMetadataUrl } = options;
  return (req, res, next) => {
    const address = clientKey(req);
    const attempt: AuthenticationAttempt = { address, ...describeRequest(req.body, options.permissions) };
    const wait = authorizer.failureBackoffSeconds(address);
    if (wait > 0) return tooManyFailures(res, wait);

    if (req.headers.authorization === undefined) {
      authorizer.authenticate(() => Promise.reject(NO_TOKEN), attempt).then(
        () => next(new Error("a request without a token was authenticated")),
        (error: unknown) => {
          if (error instanceof AppError && error.code === "ERR_RATE_LIMITED") {
            return tooManyFailures(res, Math.max(1, authorizer.failureBackoffSeconds(address)));
          }
          refuse(res, 401, "Authentication required: send the user's token in the Authorization header (Bearer).", {
            "WWW-Authenticate": `Bearer resource_metadata="${resourceMetadataUrl}"`,
          });
        },
      );
      return;
    }

    // The token is checked once, here, as the SDK's middleware reads the header. An issuer or a
    // store that cannot answer now is 503 with Retry-After (the SDK's middleware would answer
    // any server-side failure 500); every other outcome goes to the SDK's middleware as settled.
    const [scheme, token] = req.headers.authorization.split(" ");
    const outcome = scheme?.toLowerCase() === "bearer" && token ? verify(token, attempt, options) : undefined;
    const handOver = () => void requireBearerAuth({ verifier: { verifyAccessToken: () => outcome! }, resourceMetadataUrl })(req, res, next);
    if (!outcome) return handOver();
    outcome.then(handOver, (error: unknown) => {
      if (!(error instanceof Unavailable)) return handOver();
      refuse(res, 503, error.message, { "Retry-After": String(UNAVAILABLE_RETRY_SECONDS) });
    });
  };
}

/** The token could not be checked now (the issuer's key set or the store did not answer): ERR_BUSY. */
class Unavailable extends ServerError {}

/** What a client is told to wait before retrying after a 503: the JWKS fetch and the store retry within it. */
const UNAVAILABLE_RETRY_SECONDS = 2;

/** The missing-token refusal the authorizer counts and audits; its message is never shown. */
const NO_TOKEN = new AppError("ERR_AUTH_MISSING", "No Authorization header.");

async function verify(token: string, attempt: AuthenticationAttempt, { authorizer, logger }: BearerOptions): Promise<AuthInfo> {
  let principal;
  try {
    principal = await authorizer.authenticate(() => Promise.resolve(token), attempt);
  } catch (error) {
    const failure = toAppError(error, newErrorReference);
    if (TOKEN_REFUSALS.has(failure.code)) throw new InvalidTokenError(headerText(failure.publicMessage));
    if (failure.code === "ERR_BUSY") throw new Unavailable(`${failure.code}: ${failure.publicMessage}`);
    // A bad JWKS (ERR_CONFIG), or a defect.
    if (failure.code === "ERR_INTERNAL") logger.error("authentication_failed", { reference: failure.reference, error: failure.cause });
    throw new ServerError(headerText(failure.publicMessage));
  }
  // The token has just verified (or did so before and is cached): its claims are the ones checked.
  const claims = decodeJwt(token);
  const clientId = [claims.client_id, claims.azp].find((claim): claim is string => typeof claim === "string" && claim !== "");
  return toAuthInfo(principal, {
    value: token,
    clientId: clientId ?? principal.subject,
    // The SDK refuses a token past this instant by itself; the verifier already allowed for clock skew.
    expiresAt: claims.exp! + CLOCK_TOLERANCE_SECONDS,
  });
}

/**
 * A valid token that lacks the permission a called tool needs: 403 `insufficient_scope` naming
 * the scope, so that a client can ask for a token that has it (step-up). The SDK's
 * `requireBearerAuth` takes one fixed scope list per middleware; which permission a request
 * needs depends on the tool its JSON-RPC body calls, so this reads the body. The denial is
 * audited as on stdio. Other methods (`tools/list`, `initialize`) need only a valid token.
 */
export function requireToolPermissions(options: BearerOptions): RequestHandler {
  const { authorizer, permissions, resourceMetadataUrl } = options;
  return async (req, res, next) => {
    const principal = principalOf(req.auth);
    if (!principal) return next(new Error("the permission check ran before authentication"));
    for (const call of toolCalls(req.body, permissions)) {
      const permission = permissions.get(call.name)!;
      const refusal = await authorizer.refusePermission(principal, { permission, tool: call.name, keyId: call.keyId });
      if (!refusal) continue;
      const error = new InsufficientScopeError(headerText(refusal.publicMessage));
      res
        .status(403)
        .set(
          "WWW-Authenticate",
          `Bearer error="insufficient_scope", scope="${permission}", resource_metadata="${resourceMetadataUrl}", error_description="${error.message}"`,
        )
        .json(error.toResponseObject());
      return;
    }
    next();
  };
}

function tooManyFailures(res: Response, seconds: number): void {
  refuse(res, 429, `Too many failed authentications from this address. Retry after ${seconds} seconds with a valid token.`, {
    "Retry-After": String(seconds),
  });
}

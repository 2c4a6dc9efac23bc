/**
 * The library entry (`import { openVerifier } from "api-keys-mcp"`): the same key check as the
 * `verify_api_key` tool, in-process, for services that accept the keys this server issues.
 */
export { openVerifier, type Verifier, type VerifierOptions, type VerifyOptions, type VerifyResult } from "./verifier.js";
export { API_KEY_PATTERN, type Environment, type KeyType } from "./keys/format.js";
export { VERIFY_CODES, type VerifyCode } from "./keys/verify.js";
export type { KeyView, KeyStatus } from "./keys/view.js";

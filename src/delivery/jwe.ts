import { calculateJwkThumbprint, CompactEncrypt, compactDecrypt, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from "jose";
import { AppError } from "../errors.js";

/**
 * Delivery encrypted to the caller: the key is sealed as a compact JWE to a public key the caller
 * gives, so the tool result (and the model's context) holds only ciphertext, and only the holder
 * of the private key can read it. Two key management algorithms, one content encryption: what
 * every JOSE library implements and nothing weaker.
 */
export const KEY_MANAGEMENT = { EC: "ECDH-ES+A256KW", OKP: "ECDH-ES+A256KW", RSA: "RSA-OAEP-256" } as const;
export const CONTENT_ENCRYPTION = "A256GCM";

const CURVES: Record<string, readonly string[]> = { EC: ["P-256", "P-384", "P-521"], OKP: ["X25519"] };
const RSA_MIN_BITS = 2048;
const RSA_MAX_BITS = 8192;
/** JWK members that only a private (or secret) key has. */
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
/** `key_ops` values that allow what this server does with the key. */
const ENCRYPTING_OPS = ["encrypt", "wrapKey", "deriveKey", "deriveBits"];
const MAX_KID_LENGTH = 128;

/** A validated public key to encrypt to. */
export interface Recipient {
  key: CryptoKey;
  alg: (typeof KEY_MANAGEMENT)[keyof typeof KEY_MANAGEMENT];
  /** RFC 7638 SHA-256 thumbprint: names the key whatever members or order it was sent with. */
  thumbprint: string;
  /** The JWK's `kid`, copied into the JWE header so the recipient can tell which key to use. */
  kid?: string;
}

const invalid = (message: string) => new AppError("ERR_VALIDATION", `delivery.encrypt_to ${message}`);

/**
 * Checks a public JWK sent by a caller and imports it. Refused with ERR_VALIDATION: a private key
 * (its private members are never echoed), a key type, curve or size outside the list, an `alg`,
 * `use` or `key_ops` that says the key is not for this, and anything that does not import.
 */
export async function recipientFromJwk(jwk: Record<string, unknown>): Promise<Recipient> {
  const present = PRIVATE_MEMBERS.filter((member) => member in jwk);
  if (present.length > 0) {
    throw invalid(
      `is a private key (it has "${present[0]}"). Send only the public key: remove the private members (${PRIVATE_MEMBERS.join(", ")}); ` +
        "never share the private key, and consider this one exposed.",
    );
  }
  const kty = jwk.kty;
  if (kty !== "EC" && kty !== "OKP" && kty !== "RSA") {
    throw invalid(`must be an EC (P-256, P-384, P-521), OKP (X25519) or RSA (${RSA_MIN_BITS} to ${RSA_MAX_BITS} bits) public key: kty is not one of EC, OKP, RSA.`);
  }
  const alg = KEY_MANAGEMENT[kty];
  if (kty !== "RSA" && !CURVES[kty]!.includes(jwk.crv as string)) {
    throw invalid(`crv must be one of ${CURVES[kty]!.join(", ")} for kty ${kty}.`);
  }
  if (jwk.alg !== undefined && jwk.alg !== alg) throw invalid(`alg must be ${alg} for kty ${kty}, or absent.`);
  if (jwk.use !== undefined && jwk.use !== "enc") throw invalid('use must be "enc" (a key for encryption), or absent.');
  if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.some((op) => ENCRYPTING_OPS.includes(op as string)))) {
    throw invalid(`key_ops must include one of ${ENCRYPTING_OPS.join(", ")}, or be absent.`);
  }
  if (jwk.kid !== undefined && (typeof jwk.kid !== "string" || jwk.kid.length > MAX_KID_LENGTH)) {
    throw invalid(`kid must be a string of at most ${MAX_KID_LENGTH} characters, or absent.`);
  }

  // Only the public members are imported: anything else the caller sent plays no part.
  const members = kty === "RSA" ? ["kty", "n", "e"] : ["kty", "crv", "x", ...(kty === "EC" ? ["y"] : [])];
  const publicJwk: JWK = Object.fromEntries(members.map((member) => [member, jwk[member]]));
  if (members.some((member) => typeof jwk[member] !== "string")) {
    throw invalid(`must have the members ${members.join(", ")} as strings for kty ${kty}.`);
  }
  if (kty === "RSA") {
    const bits = bitLength(jwk.n as string);
    if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) throw invalid(`must be an RSA key of ${RSA_MIN_BITS} to ${RSA_MAX_BITS} bits.`);
  }
  // WebCrypto's import checks that an EC point lies on its curve (a point off it could leak the
  // shared secret).
  const notAKey = () => invalid("is not a valid public key: a member is malformed, or the point is not on the curve.");
  const recipient: Recipient = {
    key: (await importJWK(publicJwk, alg).catch(() => Promise.reject(notAKey()))) as CryptoKey,
    alg,
    thumbprint: await calculateJwkThumbprint(publicJwk, "sha256"),
    ...(typeof jwk.kid === "string" && { kid: jwk.kid }),
  };
  // A trial run: key agreement refuses some keys only when used (an X25519 point of small order).
  await encryptTo(recipient, "").catch(() => Promise.reject(notAKey()));
  return recipient;
}

/** Bits of a base64url big-endian unsigned integer. */
function bitLength(base64url: string): number {
  const bytes = Buffer.from(base64url, "base64url");
  let first = 0;
  while (first < bytes.length && bytes[first] === 0) first += 1;
  if (first === bytes.length) return 0;
  return (bytes.length - first - 1) * 8 + bytes[first]!.toString(2).length;
}

/** The plaintext sealed to the recipient, as a compact JWE. */
export function encryptTo(recipient: Recipient, plaintext: string): Promise<string> {
  return new CompactEncrypt(new TextEncoder().encode(plaintext))
    .setProtectedHeader({ alg: recipient.alg, enc: CONTENT_ENCRYPTION, ...(recipient.kid !== undefined && { kid: recipient.kid }) })
    .encrypt(recipient.key);
}

/** Opens a compact JWE made by `encryptTo` with the matching private JWK. Throws on anything else. */
export async function decryptJwe(jwe: string, privateJwk: JWK): Promise<string> {
  const { plaintext } = await compactDecrypt(jwe, (header) => importJWK(privateJwk, header.alg), {
    keyManagementAlgorithms: [...new Set(Object.values(KEY_MANAGEMENT))],
    contentEncryptionAlgorithms: [CONTENT_ENCRYPTION],
  });
  return new TextDecoder().decode(plaintext);
}

/** A new P-256 key pair for receiving keys: the private JWK to keep, the public JWK to give. */
export async function newRecipientKeyPair(): Promise<{ privateJwk: JWK; publicJwk: JWK }> {
  const { publicKey, privateKey } = await generateKeyPair(KEY_MANAGEMENT.EC, { crv: "P-256", extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk, "sha256");
  const labels = { kid, alg: KEY_MANAGEMENT.EC, use: "enc" };
  return { privateJwk: { ...(await exportJWK(privateKey)), ...labels }, publicJwk: { ...publicJwk, ...labels } };
}

import { generateKeyPairSync } from "node:crypto";
import { calculateJwkThumbprint, compactDecrypt, decodeProtectedHeader, exportJWK, generateKeyPair, type JWK } from "jose";
import { describe, expect, it } from "vitest";
import { decryptJwe, encryptTo, newRecipientKeyPair, recipientFromJwk } from "../../src/delivery/jwe.js";
import { AppError } from "../../src/errors.js";
import { generateApiKey } from "../../src/keys/format.js";

/** A key pair made by the test's own jose, as a user's tool would make it. */
async function pair(alg: string, options: { crv?: string; modulusLength?: number } = {}): Promise<{ publicJwk: JWK; privateJwk: JWK }> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { ...options, extractable: true });
  return { publicJwk: await exportJWK(publicKey), privateJwk: await exportJWK(privateKey) };
}

async function refusal(jwk: Record<string, unknown>): Promise<AppError> {
  const error = await recipientFromJwk(jwk).then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(AppError);
  expect((error as AppError).code).toBe("ERR_VALIDATION");
  return error as AppError;
}

describe("encrypt_to: a key sealed to the caller's public key", () => {
  it.each([
    ["EC P-256", "ECDH-ES+A256KW", { crv: "P-256" }],
    ["EC P-384", "ECDH-ES+A256KW", { crv: "P-384" }],
    ["EC P-521", "ECDH-ES+A256KW", { crv: "P-521" }],
    ["OKP X25519", "ECDH-ES+A256KW", { crv: "X25519" }],
    ["RSA 2048", "RSA-OAEP-256", { modulusLength: 2048 }],
  ] as const)("%s: the test's own jose opens the JWE to the key, with %s and A256GCM", async (_label, alg, options) => {
    const { publicJwk, privateJwk } = await pair(alg, options);
    const recipient = await recipientFromJwk({ ...publicJwk, kid: "laptop-2026" });
    expect(recipient.alg).toBe(alg);
    const plaintext = generateApiKey("secret", "live");
    const jwe = await encryptTo(recipient, plaintext);
    expect(jwe.split(".")).toHaveLength(5);
    expect(jwe).not.toContain(plaintext.slice(8));
    expect(decodeProtectedHeader(jwe)).toEqual({ alg, enc: "A256GCM", kid: "laptop-2026", ...(alg === "ECDH-ES+A256KW" ? { epk: expect.any(Object) } : {}) });
    const { importJWK } = await import("jose");
    const opened = await compactDecrypt(jwe, await importJWK(privateJwk, alg));
    expect(new TextDecoder().decode(opened.plaintext)).toBe(plaintext);
    expect(await decryptJwe(jwe, privateJwk)).toBe(plaintext);
  });

  it("accepts RFC 7517's example P-256 key, whose point is on the curve", async () => {
    const example = { kty: "EC", crv: "P-256", x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" };
    await expect(recipientFromJwk(example)).resolves.toMatchObject({ alg: "ECDH-ES+A256KW" });
  });

  it("names the key by its RFC 7638 thumbprint, whatever other members it carries", async () => {
    const { publicJwk } = await pair("ECDH-ES+A256KW", { crv: "P-256" });
    const plain = await recipientFromJwk(publicJwk);
    const dressed = await recipientFromJwk({ use: "enc", alg: "ECDH-ES+A256KW", kid: "x", ext: true, key_ops: ["deriveBits"], ...publicJwk });
    expect(plain.thumbprint).toBe(await calculateJwkThumbprint(publicJwk, "sha256"));
    expect(dressed.thumbprint).toBe(plain.thumbprint);
  });

  it("refuses a private key, saying which member, and never echoing it", async () => {
    const { privateJwk } = await pair("ECDH-ES+A256KW", { crv: "P-256" });
    const error = await refusal(privateJwk as Record<string, unknown>);
    expect(error.publicMessage).toMatch(/private key \(it has "d"\)/);
    expect(error.publicMessage).not.toContain(privateJwk.d!);
    const rsa = await pair("RSA-OAEP-256", { modulusLength: 2048 });
    const { d: _d, ...withoutD } = rsa.privateJwk;
    expect((await refusal(withoutD as Record<string, unknown>)).publicMessage).toMatch(/private key \(it has "p"\)/);
    expect((await refusal({ kty: "oct", k: "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0" })).publicMessage).toMatch(/it has "k"/);
  });

  it.each([
    ["another key type", { kty: "oct" }, /kty is not one of EC, OKP, RSA/],
    ["no key type", {}, /kty is not one of/],
    ["a curve outside the list", { kty: "EC", crv: "secp256k1", x: "a", y: "b" }, /crv must be one of P-256, P-384, P-521/],
    ["an Ed25519 signing key", { kty: "OKP", crv: "Ed25519", x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" }, /crv must be one of X25519/],
    ["missing members", { kty: "EC", crv: "P-256", x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU" }, /members kty, crv, x, y as strings/],
    // RFC 7517's example key with y changed in its last byte.
    ["a point not on the curve", { kty: "EC", crv: "P-256", x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a4" }, /not a valid public key/],
    ["coordinates of the wrong size", { kty: "EC", crv: "P-256", x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVE", y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" }, /not a valid public key/],
    ["an X25519 point of small order", { kty: "OKP", crv: "X25519", x: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }, /not a valid public key/],
  ])("refuses %s", async (_label, jwk, message) => {
    expect((await refusal(jwk)).publicMessage).toMatch(message);
  });

  it("refuses keys that say they are not for this: another alg, a signing use, no encrypting key_ops, a weak RSA key", async () => {
    const ec = (await pair("ECDH-ES+A256KW", { crv: "P-256" })).publicJwk;
    expect((await refusal({ ...ec, alg: "ECDH-ES" })).publicMessage).toMatch(/alg must be ECDH-ES\+A256KW/);
    expect((await refusal({ ...ec, use: "sig" })).publicMessage).toMatch(/use must be "enc"/);
    expect((await refusal({ ...ec, key_ops: ["verify"] })).publicMessage).toMatch(/key_ops must include/);
    const rsa = (await pair("RSA-OAEP-256", { modulusLength: 2048 })).publicJwk;
    expect((await refusal({ ...rsa, alg: "RSA-OAEP" })).publicMessage).toMatch(/alg must be RSA-OAEP-256/);
    // jose will not make a key this weak; node:crypto will.
    const weak = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({ format: "jwk" });
    expect((await refusal(weak as Record<string, unknown>)).publicMessage).toMatch(/RSA key of 2048 to 8192 bits/);
  });

  it("makes a recipient key pair whose public half encrypts and whose private half opens", async () => {
    const { publicJwk, privateJwk } = await newRecipientKeyPair();
    expect(publicJwk).toMatchObject({ kty: "EC", crv: "P-256", alg: "ECDH-ES+A256KW", use: "enc", kid: expect.any(String) });
    expect(publicJwk).not.toHaveProperty("d");
    expect(privateJwk.d).toEqual(expect.any(String));
    const jwe = await encryptTo(await recipientFromJwk(publicJwk as Record<string, unknown>), "sk_test_x");
    expect(await decryptJwe(jwe, privateJwk)).toBe("sk_test_x");
    const other = await newRecipientKeyPair();
    await expect(decryptJwe(jwe, other.privateJwk)).rejects.toThrow();
  });
});

import { exportJWK, generateKeyPair } from "jose";
import { describe, expect, it } from "vitest";
import { DEFAULT_DELIVERY, deliveryFingerprint, planDelivery } from "../../src/delivery/policy.js";

const FILE_ONLY = { default: "file", inlineAllowed: false, directory: "/srv/keys" } as const;

describe("planDelivery: the operator's settings applied to what a call asks for", () => {
  it("gives the default when the call names none", async () => {
    expect(await planDelivery(undefined, DEFAULT_DELIVERY)).toEqual({ method: "inline" });
    expect(await planDelivery(undefined, FILE_ONLY)).toEqual({ method: "file", directory: "/srv/keys" });
  });

  it("refuses inline when the operator forbade it, and file without a directory", async () => {
    await expect(planDelivery("inline", FILE_ONLY)).rejects.toMatchObject({ code: "ERR_VALIDATION", publicMessage: expect.stringMatching(/API_KEYS_MCP_DELIVERY=file/) });
    await expect(planDelivery("file", DEFAULT_DELIVERY)).rejects.toMatchObject({
      code: "ERR_VALIDATION",
      publicMessage: expect.stringMatching(/API_KEYS_MCP_DELIVERY_DIR is not set.* or "inline"/),
    });
  });

  it("allows encrypt_to whatever the settings, and fingerprints it by the key's thumbprint", async () => {
    const jwk = await exportJWK((await generateKeyPair("ECDH-ES+A256KW", { crv: "P-256" })).publicKey);
    const plan = await planDelivery({ encrypt_to: jwk as Record<string, unknown> }, FILE_ONLY);
    expect(plan.method).toBe("encrypt_to");
    const reordered = await planDelivery({ encrypt_to: { kid: "k", y: jwk.y, x: jwk.x, crv: jwk.crv, kty: jwk.kty } }, DEFAULT_DELIVERY);
    expect(deliveryFingerprint(reordered)).toEqual(deliveryFingerprint(plan));
    expect(deliveryFingerprint({ method: "file", directory: "/x" })).toBe("file");
  });
});

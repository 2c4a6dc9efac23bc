import { describe, expect, it } from "vitest";
import { auditedClient, CLIENT_FIELD_MAX } from "../../src/audit/client.js";
import { generateApiKey } from "../../src/keys/format.js";

describe("auditedClient: the client's self-declared name, cleaned before it is stored", () => {
  it("keeps an ordinary name and version as they are", () => {
    expect(auditedClient({ name: "claude-code", version: "2.1.0" })).toEqual({ name: "claude-code", version: "2.1.0" });
    expect(auditedClient({ name: "Visual Studio Code", version: "1.96.0-insider" })).toEqual({ name: "Visual Studio Code", version: "1.96.0-insider" });
  });

  it("is null when the server saw no initialize, and keeps a name without a version", () => {
    expect(auditedClient(undefined)).toBeNull();
    expect(auditedClient({ version: "1.0" })).toBeNull();
    expect(auditedClient({ name: 42, version: "1.0" })).toBeNull();
    expect(auditedClient({ name: "bare" })).toEqual({ name: "bare", version: "" });
  });

  it("removes control characters, bidirectional overrides and unpaired surrogates", () => {
    expect(auditedClient({ name: "evil\nFAKE LINE\u202Egpj.exe\u0000", version: "1\uD800.0" })).toEqual({ name: "evilFAKE LINEgpj.exe", version: "1.0" });
    // A proper surrogate pair (an emoji) is text, and stays.
    expect(auditedClient({ name: "robot \uD83E\uDD16", version: "1" })).toEqual({ name: "robot \uD83E\uDD16", version: "1" });
  });

  it("redacts an API key or a token in either field, never storing it", () => {
    const key = generateApiKey("secret", "live");
    const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl";
    const client = auditedClient({ name: `client ${key}`, version: jwt })!;
    expect(JSON.stringify(client)).not.toContain(key.slice(8));
    expect(JSON.stringify(client)).not.toContain("eyJzdWIiOiJ4In0");
    expect(client.name).toMatch(/^client sk_live_/);
  });

  it(`cuts each field to ${CLIENT_FIELD_MAX} characters, however long the declaration`, () => {
    const client = auditedClient({ name: "n".repeat(100_000), version: "v".repeat(1000) })!;
    expect(client.name).toBe("n".repeat(CLIENT_FIELD_MAX));
    expect(client.version).toBe("v".repeat(CLIENT_FIELD_MAX));
  });
});

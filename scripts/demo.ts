/**
 * `npm run demo`: a first look that needs no configuration. Starts the built server the way an
 * MCP host does (a child process on stdio) with a throwaway secret and a temporary database,
 * then walks through the key lifecycle and the errors a model meets, with a real MCP client.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { SignJWT } from "jose";

const entry = fileURLToPath(new URL("../src/index.js", import.meta.url));
const color = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code: string) => (text: string) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);
const bold = paint("1");
const dim = paint("2");
const green = paint("32");
const red = paint("31");
const cyan = paint("36");

type Args = Record<string, unknown>;
interface KeyView {
  key_id: string;
  name: string;
  description: string | null;
  type: string;
  environment: string;
  prefix: string;
  status: string;
  expires_at: string | null;
}

let step = 0;
function heading(title: string, explanation: string): void {
  step += 1;
  console.log(`\n${bold(`${step}. ${title}`)}`);
  console.log(dim(`   ${explanation}`));
}

function keyLine(key: KeyView): string {
  const status = key.status === "active" ? green(key.status) : red(key.status);
  const expiry = key.expires_at ? `expires ${key.expires_at.slice(0, 10)}` : "never expires";
  return `${cyan(key.key_id)}  ${key.prefix}…  ${key.name.padEnd(22)} ${key.type}/${key.environment}  ${status}  ${expiry}`;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "api-keys-mcp-demo-"));
  const secret = randomBytes(32).toString("base64url");
  const key = new TextEncoder().encode(secret);
  const mint = (merchant: string, sub: string, scope = "api_keys:read api_keys:write") =>
    new SignJWT({ merchant_id: merchant, scope }).setProtectedHeader({ alg: "HS256" }).setSubject(sub).setIssuedAt().setExpirationTime("15m").sign(key);
  const alice = await mint("merchant_acme", "alice@acme.test");
  const bob = await mint("merchant_globex", "bob@globex.test");
  const viewer = await mint("merchant_acme", "victor@acme.test", "api_keys:read");

  console.log(bold("api-keys-mcp demo"));
  console.log(dim(`Starting the server as an MCP host would: node ${entry}`));
  console.log(dim("with a throwaway HMAC secret, a database in a temporary folder, and Alice's token for merchant_acme."));
  const deliveryDir = join(dir, "delivered");
  mkdirSync(deliveryDir, { mode: 0o700 });

  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [entry],
    env: {
      API_KEYS_MCP_JWT_SECRET: secret,
      API_KEYS_MCP_TOKEN: alice,
      API_KEYS_MCP_DB: join(dir, "keys.db"),
      API_KEYS_MCP_DELIVERY_DIR: deliveryDir,
      API_KEYS_MCP_LOG_LEVEL: "warn",
    },
    stderr: "inherit",
  });
  const client = new Client({ name: "api-keys-mcp-demo", version: "1.0.0" });

  const call = async (name: string, args: Args = {}) => {
    const result = await client.callTool({ name, arguments: args });
    const text = (result.content as { text: string }[]).map((part) => part.text).join("\n");
    return { error: result.isError ? text : undefined, data: result.structuredContent as Record<string, unknown> };
  };
  const show = (args: Args) => dim(`   → ${JSON.stringify(args, (k, v) => (k === "token" ? "<jwt>" : v))}`);

  try {
    await client.connect(transport);
    const { tools } = await client.listTools();
    heading("tools/list", "What a host sees when it connects.");
    for (const tool of tools) console.log(`   ${cyan(tool.name.padEnd(16))} ${tool.title}`);

    heading("create_api_key", "A secret test key for a service, expiring in 90 days. The plaintext is shown once, here.");
    const createArgs = { name: "checkout-service", description: "Charges cards at checkout", expiration: "90d" };
    console.log(show(createArgs));
    const created = await call("create_api_key", createArgs);
    const first = created.data.key as KeyView;
    console.log(`   ${keyLine(first)}`);
    console.log(`   api_key: ${bold(String(created.data.api_key))}  ${dim("(only the SHA-256 of it is stored)")}`);

    heading("create_api_key", "A publishable live key for the storefront.");
    const second = (await call("create_api_key", { name: "storefront", type: "publishable", environment: "live" })).data.key as KeyView;
    console.log(`   ${keyLine(second)}`);

    heading("list_api_keys", "Newest first, paginated with an opaque cursor. Prefixes only, never secrets.");
    const listed = await call("list_api_keys", { limit: 10 });
    for (const item of listed.data.keys as KeyView[]) console.log(`   ${keyLine(item)}`);
    console.log(dim(`   next_cursor: ${JSON.stringify(listed.data.next_cursor)}`));

    heading("get_api_key", "One key by id.");
    console.log(show({ key_id: first.key_id }));
    console.log(`   ${keyLine((await call("get_api_key", { key_id: first.key_id })).data.key as KeyView)}`);

    heading("update_api_key", "Rename it and make it never expire; the secret itself does not change.");
    const updateArgs = { key_id: first.key_id, name: "checkout-service-v2", expiration: "never" };
    console.log(show(updateArgs));
    console.log(`   ${keyLine((await call("update_api_key", updateArgs)).data.key as KeyView)}`);

    heading("verify_api_key", "Is a key good? The same check services get in-process from `openVerifier`.");
    const verified = await call("verify_api_key", { api_key: String(created.data.api_key) });
    console.log(`   ${green(String(verified.data.code))} for ${first.prefix}…  ${dim("(a valid check counts as a use: usage_count, last_used_at)")}`);
    const mistyped = `${String(created.data.api_key).slice(0, -1)}${String(created.data.api_key).endsWith("x") ? "y" : "x"}`;
    console.log(`   ${red(String((await call("verify_api_key", { api_key: mistyped })).data.code))} for the same key with its last character changed (checksum, no database lookup)`);

    heading("rotate_api_key", "A new secret for the checkout service; the old one keeps working for 24 hours so it can switch over.");
    const rotateArgs = { key_id: first.key_id, grace_period: "24h" };
    console.log(show(rotateArgs));
    const rotated = await call("rotate_api_key", rotateArgs);
    const replacement = rotated.data.key as KeyView;
    console.log(`   new: ${keyLine(replacement)}`);
    console.log(`   api_key: ${bold(String(rotated.data.api_key))}  ${dim("(shown once)")}`);
    console.log(`   old: ${keyLine(rotated.data.previous as KeyView)}`);

    heading(
      "Keys that never enter the conversation",
      "A tool result is read by the model and kept in the transcript. With encrypt_to, the result holds only ciphertext for your key.",
    );
    const recipientFile = join(dir, "recipient.jwk");
    const cli = (args: string[], input?: string) => execFileSync(process.execPath, [entry, ...args], { input, encoding: "utf8", stdio: ["pipe", "pipe", "ignore"] });
    console.log(dim(`   $ api-keys-mcp decrypt --new-key ${recipientFile}    (once, on your machine: the private half stays there)`));
    const publicJwk = JSON.parse(cli(["decrypt", "--new-key", recipientFile])) as Record<string, unknown>;
    const sealedArgs = { name: "payouts-worker", environment: "live", delivery: { encrypt_to: publicJwk }, idempotency_key: "demo-payouts-1" };
    console.log(show({ ...sealedArgs, delivery: { encrypt_to: { kty: publicJwk.kty, crv: publicJwk.crv, x: "…", y: "…" } } }));
    const sealed = await call("create_api_key", sealedArgs);
    const sealedKey = sealed.data.key as KeyView;
    const jwe = String((sealed.data.delivery as { jwe: string }).jwe);
    console.log(`   ${keyLine(sealedKey)}`);
    console.log(`   api_key: ${dim("(not in the result)")}  delivery.jwe: ${jwe.slice(0, 36)}…${jwe.slice(-8)}  ${dim(`(${jwe.length} characters)`)}`);
    console.log(dim(`   $ api-keys-mcp decrypt --key ${recipientFile} <<< "$JWE"`));
    const opened = cli(["decrypt", "--key", recipientFile], jwe).trim();
    console.log(`   ${bold(opened)}  ${dim("(decrypted where you are; the model never saw it)")}`);
    console.log(`   verify_api_key: ${green(String((await call("verify_api_key", { api_key: opened })).data.code))}`);
    const again = await call("create_api_key", sealedArgs);
    console.log(
      `   the same call again (same idempotency_key): ${cyan((again.data.key as KeyView).key_id)} replayed=${String(again.data.replayed)}, ` +
        dim("no second key, no secret sent again"),
    );
    const filed = await call("create_api_key", { name: "nightly-export", delivery: "file" });
    const path = String((filed.data.delivery as { path: string }).path);
    console.log(`   delivery "file": ${path}  ${dim(`(mode ${(statSync(path).mode & 0o777).toString(8)}, created exclusively; the result names the path only)`)}`);

    heading("delete_api_key", "Revoke the storefront key: a soft delete, kept for the audit trail, never re-activated.");
    console.log(show({ key_id: second.key_id }));
    console.log(`   ${keyLine((await call("delete_api_key", { key_id: second.key_id })).data.key as KeyView)}`);
    const remaining = (await call("list_api_keys")).data.keys as KeyView[];
    console.log(dim(`   list_api_keys now shows ${remaining.length} of 5 keys; status "all" would include the revoked one.`));

    heading("A bad token", "A token signed with another secret is refused, and the token never appears in the error.");
    const forged = await new SignJWT({ merchant_id: "merchant_acme", scope: "api_keys:write" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("mallory")
      .setExpirationTime("15m")
      .sign(new TextEncoder().encode("not-the-server-secret-but-long-enough!!"));
    console.log(show({ name: "intruder", token: forged }));
    console.log(`   ${red((await call("create_api_key", { name: "intruder", token: forged })).error ?? "")}`);

    heading("Another tenant's key", "Bob, of merchant_globex, asks for Alice's key: it looks exactly like a key that does not exist.");
    console.log(show({ key_id: first.key_id, token: bob }));
    console.log(`   ${red((await call("get_api_key", { key_id: first.key_id, token: bob })).error ?? "")}`);

    heading("A read-only token", "Victor may read merchant_acme's keys but not create them.");
    console.log(show({ name: "victor's key", token: viewer }));
    console.log(`   ${red((await call("create_api_key", { name: "victor's key", token: viewer })).error ?? "")}`);

    heading(
      "list_audit_events",
      "Every change and every denial, newest first, with who acted and through which MCP client; hash-chained (`api-keys-mcp audit verify` checks the chain).",
    );
    const audit = await call("list_audit_events", { limit: 20 });
    type Event = { occurred_at: string; action: string; actor: string | null; key_id: string | null; reason: string | null; client: { name: string } | null };
    for (const event of audit.data.events as Event[]) {
      const time = event.occurred_at.slice(11, 19);
      const via = dim(`via ${event.client?.name ?? "?"}`);
      console.log(`   ${dim(time)}  ${event.action.padEnd(16)} ${(event.actor ?? "(unknown)").padEnd(18)} ${via} ${event.key_id ?? ""} ${event.reason ?? ""}`);
    }

    console.log(`\n${bold("Done.")} Next: ${cyan("npm test")} runs the test suite; the README shows how to add the server to Claude Desktop.`);
  } finally {
    await client.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(red(`demo failed: ${error instanceof Error ? error.message : String(error)}`));
  process.exitCode = 1;
});

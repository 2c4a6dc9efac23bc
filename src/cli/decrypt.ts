import { open, unlink } from "node:fs/promises";
import { parseArgs } from "node:util";
import type { JWK } from "jose";
import { decryptJwe, newRecipientKeyPair } from "../delivery/jwe.js";
import type { Io } from "./io.js";

const DECRYPT_HELP = `Usage: api-keys-mcp decrypt --key <private JWK file> [<jwe>]
       api-keys-mcp decrypt --new-key <file>

Opens a key delivered with { "encrypt_to": <public JWK> } by create_api_key or
rotate_api_key: reads the JWE from the argument, or from stdin when there is none,
and prints the API key on stdout. Only the private key matching the public key the
key was encrypted to opens it (ECDH-ES+A256KW or RSA-OAEP-256, with A256GCM).

--new-key makes a key pair for receiving keys: it writes the private JWK to <file>
(a new file, readable by you only; never overwritten) and prints the public JWK on
stdout, to give as encrypt_to. Keep the private key file out of any conversation.

Options:
  --key <file>       the private JWK (JSON) to decrypt with
  --new-key <file>   create a P-256 key pair: private JWK to <file>, public JWK to stdout
  -h, --help         show this help

Examples:
  api-keys-mcp decrypt --new-key ~/.secrets/api-keys-recipient.jwk
  api-keys-mcp decrypt --key ~/.secrets/api-keys-recipient.jwk 'eyJhbGciOiJFQ0RILUVTK0EyNTZLVyIs...'
  pbpaste | api-keys-mcp decrypt --key ~/.secrets/api-keys-recipient.jwk > checkout.key
`;

/** More than any JWE of an API key needs; stdin is not read past it. */
const MAX_JWE_BYTES = 64 * 1024;

/** `api-keys-mcp decrypt`. Returns the exit code: 0, 1 when the JWE does not open, 2 for usage and files. */
export async function decryptCommand(args: string[], io: Io): Promise<number> {
  const fail = (message: string, code = 2) => {
    io.stderr.write(`api-keys-mcp decrypt: ${message}\n`);
    return code;
  };
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { key: { type: "string" }, "new-key": { type: "string" }, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    return fail(`${(error as Error).message}\n\n${DECRYPT_HELP}`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout.write(DECRYPT_HELP);
    return 0;
  }
  if (values["new-key"] !== undefined) {
    if (values.key !== undefined || positionals.length > 0) return fail(`--new-key takes no other option or argument\n\n${DECRYPT_HELP}`);
    return newKey(values["new-key"], io, fail);
  }
  if (values.key === undefined) return fail(`--key <private JWK file> is required\n\n${DECRYPT_HELP}`);
  if (positionals.length > 1) return fail(`expected at most one JWE argument\n\n${DECRYPT_HELP}`);

  let privateJwk: JWK;
  try {
    privateJwk = JSON.parse(io.readFileSync(values.key)) as JWK;
  } catch {
    return fail("cannot read the private key: --key must name a readable file holding a JWK (JSON)");
  }
  if (typeof privateJwk !== "object" || privateJwk === null || typeof privateJwk.d !== "string") {
    return fail('the --key file is not a private JWK (it has no "d"); give the private key whose public half the key was encrypted to');
  }
  const jwe = (positionals[0] ?? (await readStdin(io))).trim();
  if (jwe === "") return fail("no JWE: pass it as an argument or on stdin");
  try {
    io.stdout.write(`${await decryptJwe(jwe, privateJwk)}\n`);
    return 0;
  } catch {
    // jose's reason (wrong key, tampered ciphertext, unsupported algorithm) says nothing more useful here.
    return fail("the JWE does not open with this key: it was encrypted to another key, or it is damaged or incomplete", 1);
  }
}

async function newKey(path: string, io: Io, fail: (message: string) => number): Promise<number> {
  const { privateJwk, publicJwk } = await newRecipientKeyPair();
  let file;
  try {
    file = await open(path, "wx", 0o600);
  } catch (error) {
    const exists = (error as NodeJS.ErrnoException).code === "EEXIST";
    return fail(exists ? `${path} exists already; it is never overwritten: choose another file` : `cannot create ${path}: ${(error as Error).message}`);
  }
  try {
    await file.chmod(0o600);
    await file.writeFile(`${JSON.stringify(privateJwk)}\n`, "utf8");
    await file.sync();
  } catch (error) {
    await file.close();
    await unlink(path);
    return fail(`cannot write ${path}: ${(error as Error).message}`);
  }
  await file.close();
  io.stderr.write(`api-keys-mcp decrypt: private key written to ${path}; give the public key below as encrypt_to\n`);
  io.stdout.write(`${JSON.stringify(publicJwk)}\n`);
  return 0;
}

async function readStdin(io: Io): Promise<string> {
  let text = "";
  for await (const chunk of io.stdin) {
    text += typeof chunk === "string" ? chunk : (chunk as Buffer).toString("utf8");
    if (text.length > MAX_JWE_BYTES) break;
  }
  return text;
}

import * as z from "zod";
import { writeKeyFile } from "../src/delivery/file.js";
import { encryptTo } from "../src/delivery/jwe.js";
import type { DeliveryPlan } from "../src/delivery/policy.js";
import { DELIVERY_METHODS } from "../src/keys/record.js";

const jwkMember = z.string().max(2048);

/** A public JWK as a caller sends it. Loose on purpose: a private member is refused with a clear ERR_VALIDATION, not by the schema. */
const publicJwk = z
  .object({
    kty: z.string().max(8).describe('"EC", "OKP" or "RSA".'),
    crv: jwkMember.optional().describe('For EC: "P-256", "P-384" or "P-521"; for OKP: "X25519".'),
    x: jwkMember.optional(),
    y: jwkMember.optional(),
    n: jwkMember.optional(),
    e: jwkMember.optional(),
    kid: jwkMember.optional().describe("Copied into the JWE header, so the recipient knows which key to decrypt with."),
    alg: jwkMember.optional().describe('If present: "ECDH-ES+A256KW" (EC, OKP) or "RSA-OAEP-256" (RSA).'),
    use: jwkMember.optional(),
    key_ops: z.array(z.string().max(32)).max(16).optional(),
  })
  .catchall(z.union([z.string().max(8192), z.number(), z.boolean(), z.array(z.string().max(8192)).max(16)]))
  .describe("The recipient's PUBLIC key as a JWK. Never a private key (no \"d\").");

/** The `delivery` input of the tools that make a key. */
export const deliveryField = z
  .union([
    z.enum(["inline", "file"]),
    z.strictObject({ encrypt_to: publicJwk }).describe("Encrypt the key to this public key; the result holds only the JWE."),
  ])
  .optional()
  .describe(
    'How the new secret key is handed over. "inline": in this result, so it enters the conversation. "file": written to an owner-only file ' +
      '<key_id>.key on the server (the result names the path). { "encrypt_to": <public JWK> }: encrypted to the user\'s public key; ' +
      "the result holds only a JWE that `api-keys-mcp decrypt` opens. Prefer file (the user is on the server's machine) or encrypt_to " +
      "(the user gave a public key) so that the secret never enters this conversation. Omitted: the server's default (inline unless the operator chose file).",
  );

/** The `delivery` output: how the key was handed over, and where to find it. */
export const deliveryOutput = z
  .object({
    method: z.enum(DELIVERY_METHODS),
    path: z.string().optional().describe("For file: the absolute path of the file holding the key, readable by the server's user only."),
    jwe: z
      .string()
      .optional()
      .describe("For encrypt_to: the key as a compact JWE. Pass it to the user as it is; `api-keys-mcp decrypt --key <private JWK file>` opens it."),
  })
  .describe("How the secret was delivered. Never holds the secret itself, except encrypted (jwe).");

export type DeliveryOutput = z.output<typeof deliveryOutput>;

/** A key handed over before its commit, and how to take it back if the commit does not happen. */
export interface Handover {
  /** The plaintext, for inline delivery only. */
  apiKey?: string;
  delivery: DeliveryOutput;
  /** Text for the model before the JSON. */
  notice: string;
  /** Takes back what was written (the file); failures are ignored, as an orphan file holds a key that never existed. */
  undo(): Promise<void>;
}

export const STORE_NOW_NOTICE =
  "Store this API key now: the api_key value below is shown only in this result and can never be retrieved again. " +
  "Give it to the user for their secret manager and do not repeat it elsewhere. If it is lost, create a new key and revoke this one.";

/**
 * Hands the new key over as planned: writes its file or encrypts it. Runs before the key is
 * committed, so that a key never exists in the store whose only copy was lost.
 */
export async function handOver(plan: DeliveryPlan, keyId: string, plaintext: string): Promise<Handover> {
  const nothing = async () => {};
  if (plan.method === "inline") return { apiKey: plaintext, delivery: { method: "inline" }, notice: STORE_NOW_NOTICE, undo: nothing };
  if (plan.method === "encrypt_to") {
    return {
      delivery: { method: "encrypt_to", jwe: await encryptTo(plan.recipient, plaintext) },
      notice:
        "The new secret key is not in this result: delivery.jwe holds it encrypted to the public key you gave, and only the holder of the " +
        "matching private key can read it (api-keys-mcp decrypt --key <private JWK file>). Pass the JWE to the user as it is; do not try to decrypt it here.",
      undo: nothing,
    };
  }
  const file = await writeKeyFile(plan.directory, keyId, plaintext);
  return {
    delivery: { method: "file", path: file.path },
    notice:
      `The new secret key is not in this result: it was written to ${file.path}, readable only by the server's user. ` +
      "Tell the user where it is, so they move it into their secret manager and delete the file. Do not read the file into this conversation.",
    undo: () => file.remove().catch(() => {}),
  };
}

/**
 * Runs the write that commits the key, and takes the handover back when it did not commit: when
 * the write answers a refusal, or throws and the store does not have the key. A write that throws
 * may still have committed (a connection lost during COMMIT), so the file goes only once `stored`
 * says the key is not there; if that cannot be told, the file stays.
 */
export async function commitHandover<Result extends { ok: boolean }>(
  handover: Handover,
  write: () => Promise<Result>,
  stored: () => Promise<boolean>,
): Promise<Result> {
  let result: Result;
  try {
    result = await write();
  } catch (error) {
    if (!(await stored().catch(() => true))) await handover.undo();
    throw error;
  }
  if (!result.ok) await handover.undo();
  return result;
}

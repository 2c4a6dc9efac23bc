import { constants, lstatSync } from "node:fs";
import { open, unlink } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { AppError } from "../errors.js";
import { KEY_ID_PATTERN } from "../keys/ids.js";

/**
 * Delivery to a file: the key is written to `<key_id>.key` in a directory the operator chose, so
 * the tool result names a path and never the key. The directory is the trust boundary: it must
 * be a real directory (not a symbolic link), owned by the user the server runs as, and writable
 * by nobody else, so no one else can plant, swap or read a file there. The file is created
 * exclusively (never over an existing file or through a symbolic link), owner-only, and synced
 * to disk with its directory entry before the key is committed.
 */

/** Why a delivery directory cannot be used. Messages name no path. */
export type DirectoryProblem = "relative" | "missing" | "unreadable" | "not-a-directory" | "symlink" | "foreign-owner" | "shared-writable";

export interface DirectoryCheckOptions {
  /** The server's user id; undefined where there is none to compare (Windows). */
  uid?: number;
  platform?: NodeJS.Platform;
}

/** Whether `path` may hold delivered keys; undefined when it may. */
export function checkDeliveryDirectory(path: string, options: DirectoryCheckOptions = {}): DirectoryProblem | undefined {
  if (!isAbsolute(path)) return "relative";
  let stats;
  try {
    stats = lstatSync(path);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ENOENT" ? "missing" : "unreadable";
  }
  if (stats.isSymbolicLink()) return "symlink";
  if (!stats.isDirectory()) return "not-a-directory";
  // Windows has neither owner ids nor mode bits to check; its ACLs are the operator's to set.
  if ((options.platform ?? process.platform) === "win32") return undefined;
  const uid = options.uid ?? process.getuid?.();
  if (uid !== undefined && stats.uid !== uid) return "foreign-owner";
  if ((stats.mode & 0o022) !== 0) return "shared-writable";
  return undefined;
}

/** The file a key is delivered to. Throws (a programming error) for anything but a key id. */
export function deliveryFilePath(directory: string, keyId: string): string {
  // The name comes from the key id alone, whose pattern admits no separator, dot or NUL: the
  // file can only ever be a direct child of the directory.
  if (!KEY_ID_PATTERN.test(keyId)) throw new TypeError("deliveryFilePath: not a key id");
  return join(directory, `${keyId}.key`);
}

/** A key written to its file; `remove` takes it back (the commit that should follow failed). */
export interface DeliveredFile {
  path: string;
  remove(): Promise<void>;
}

const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;
const O_DIRECTORY = constants.O_DIRECTORY ?? 0;

/**
 * Writes the key to a new file `<keyId>.key` in `directory`, mode 0600, and syncs the file and the
 * directory. Re-checks the directory first (it may have changed since the server started). Never
 * replaces or follows anything: an existing file or symbolic link of that name makes it fail.
 */
export async function writeKeyFile(directory: string, keyId: string, plaintext: string, options: DirectoryCheckOptions = {}): Promise<DeliveredFile> {
  const problem = checkDeliveryDirectory(directory, options);
  if (problem) {
    throw new AppError(
      "ERR_CONFIG",
      `The delivery directory (API_KEYS_MCP_DELIVERY_DIR) is no longer usable: ${DIRECTORY_PROBLEMS[problem].message}. Nothing was created. ` +
        `Ask the operator to ${DIRECTORY_PROBLEMS[problem].fix}, or use another delivery.`,
    );
  }
  const path = deliveryFilePath(directory, keyId);
  let file;
  try {
    file = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | O_NOFOLLOW, 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST" || code === "ELOOP" || code === "EACCES" || code === "EPERM" || code === "EROFS") {
      throw new AppError(
        "ERR_CONFIG",
        "The key file could not be created in the delivery directory (a file of that name exists, or the directory is not writable). " +
          "Nothing was created. Ask the operator to check API_KEYS_MCP_DELIVERY_DIR, or use another delivery.",
        { cause: error },
      );
    }
    throw error;
  }
  const remove = () => unlink(path).catch((error: NodeJS.ErrnoException) => (error.code === "ENOENT" ? undefined : Promise.reject(error)));
  try {
    // The mode given to open is narrowed by the umask; set it exactly.
    await file.chmod(0o600);
    await file.writeFile(`${plaintext}\n`, "utf8");
    await file.sync();
  } catch (error) {
    await file.close();
    await remove();
    throw error;
  }
  await file.close();
  try {
    await syncDirectory(directory, options.platform ?? process.platform);
  } catch (error) {
    await remove();
    throw error;
  }
  return { path, remove };
}

/** Makes the new directory entry durable, so a crash after the commit cannot lose the file. */
async function syncDirectory(directory: string, platform: NodeJS.Platform): Promise<void> {
  // Windows cannot open a directory as a file; NTFS journals the entry itself.
  if (platform === "win32") return;
  const handle = await open(directory, constants.O_RDONLY | O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** What each problem means and how the operator fixes it, naming the variable and never the path. */
export const DIRECTORY_PROBLEMS: Record<DirectoryProblem, { message: string; fix: string }> = {
  relative: {
    message: "API_KEYS_MCP_DELIVERY_DIR must be an absolute path",
    fix: "set API_KEYS_MCP_DELIVERY_DIR to the absolute path of an existing directory, or remove it",
  },
  missing: {
    message: "the directory named by API_KEYS_MCP_DELIVERY_DIR does not exist (the server never creates it)",
    fix: "set API_KEYS_MCP_DELIVERY_DIR to an existing directory (create it with mkdir -m 700), or remove it",
  },
  unreadable: {
    message: "the directory named by API_KEYS_MCP_DELIVERY_DIR cannot be examined",
    fix: "make the directory named by API_KEYS_MCP_DELIVERY_DIR and its parents readable by the user the server runs as, or remove API_KEYS_MCP_DELIVERY_DIR",
  },
  "not-a-directory": {
    message: "API_KEYS_MCP_DELIVERY_DIR names something that is not a directory",
    fix: "set API_KEYS_MCP_DELIVERY_DIR to a directory, or remove it",
  },
  symlink: {
    message: "API_KEYS_MCP_DELIVERY_DIR names a symbolic link, which could be pointed elsewhere",
    fix: "set API_KEYS_MCP_DELIVERY_DIR to the real directory the link points to, or remove it",
  },
  "foreign-owner": {
    message: "the directory named by API_KEYS_MCP_DELIVERY_DIR is not owned by the user the server runs as",
    fix: "set API_KEYS_MCP_DELIVERY_DIR to a directory owned by the user the server runs as, or remove it",
  },
  "shared-writable": {
    message: "the directory named by API_KEYS_MCP_DELIVERY_DIR is writable by its group or by others",
    fix: "set API_KEYS_MCP_DELIVERY_DIR to a directory only its owner can write to (chmod 700 it), or remove it",
  },
};

import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { checkDeliveryDirectory, deliveryFilePath, writeKeyFile } from "../../src/delivery/file.js";
import { AppError } from "../../src/errors.js";
import { generateApiKey } from "../../src/keys/format.js";
import { newKeyId } from "../../src/keys/ids.js";
import { tempDir } from "../helpers/spawn.js";

const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);

async function refusedWith(promise: Promise<unknown>, code: string): Promise<AppError> {
  const error = await promise.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(AppError);
  expect((error as AppError).code).toBe(code);
  return error as AppError;
}

describe("file delivery", () => {
  let root: ReturnType<typeof tempDir>;
  let dir: string;
  beforeEach(() => {
    root = tempDir();
    dir = join(root.path, "keys");
    mkdirSync(dir, { mode: 0o700 });
  });
  afterEach(() => root.remove());

  describe("the directory", () => {
    it("accepts an owner-only directory, and one others may read but not write", () => {
      expect(checkDeliveryDirectory(dir)).toBeUndefined();
      chmodSync(dir, 0o755);
      expect(checkDeliveryDirectory(dir)).toBeUndefined();
    });

    it.each([
      ["group-writable", 0o770],
      ["world-writable", 0o703],
      ["world-writable with the sticky bit (like /tmp)", 0o1777],
    ])("refuses a %s directory", (_label, bits) => {
      chmodSync(dir, bits);
      expect(checkDeliveryDirectory(dir)).toBe("shared-writable");
    });

    it("refuses a directory another user owns", () => {
      const owner = lstatSync(dir).uid;
      expect(checkDeliveryDirectory(dir, { uid: owner + 1 })).toBe("foreign-owner");
      expect(checkDeliveryDirectory(dir, { uid: owner })).toBeUndefined();
    });

    it("refuses a relative path, a missing directory, a file, and a symbolic link to a good directory", () => {
      expect(checkDeliveryDirectory("keys")).toBe("relative");
      expect(checkDeliveryDirectory(join(root.path, "nope"))).toBe("missing");
      writeFileSync(join(root.path, "file"), "");
      expect(checkDeliveryDirectory(join(root.path, "file"))).toBe("not-a-directory");
      symlinkSync(dir, join(root.path, "link"));
      expect(checkDeliveryDirectory(join(root.path, "link"))).toBe("symlink");
    });

    it("checks nothing of owners and modes on Windows, where neither exists", () => {
      chmodSync(dir, 0o777);
      expect(checkDeliveryDirectory(dir, { platform: "win32", uid: 1 })).toBeUndefined();
    });
  });

  describe("the file name", () => {
    it("is the key id and .key, directly in the directory", () => {
      const keyId = newKeyId();
      expect(deliveryFilePath(dir, keyId)).toBe(join(dir, `${keyId}.key`));
    });

    it.each(["../../etc/passwd", "key_../../../tmp/x", `key_AAAAAAAAAAAAAAAAAAAA/../../x`, "key_AAAAAAAAAAAAAAAAAAA\u0000", "/etc/passwd", "key_AAAAAAAAAAAAAAAAAAAA.."])(
      "refuses anything but a key id: %j",
      (keyId) => {
        expect(() => deliveryFilePath(dir, keyId)).toThrow(TypeError);
      },
    );

    it("refuses a traversing key id before touching the disk", async () => {
      await expect(writeKeyFile(dir, "../escaped", "sk_test_x")).rejects.toThrow(TypeError);
      expect(existsSync(join(root.path, "escaped.key"))).toBe(false);
      expect(readdirSync(dir)).toEqual([]);
    });
  });

  describe("writing", () => {
    it("writes the key to a new owner-only file, mode 0600 exactly", async () => {
      const keyId = newKeyId();
      const plaintext = generateApiKey("secret", "live");
      const file = await writeKeyFile(dir, keyId, plaintext);
      expect(file.path).toBe(join(dir, `${keyId}.key`));
      expect(readFileSync(file.path, "utf8")).toBe(`${plaintext}\n`);
      expect(mode(file.path)).toBe("600");
      expect(lstatSync(file.path).isFile()).toBe(true);
      await file.remove();
      expect(existsSync(file.path)).toBe(false);
      await file.remove();
    });

    it("sets the mode exactly, whatever the umask", async () => {
      const previous = process.umask(0o277);
      try {
        const file = await writeKeyFile(dir, newKeyId(), "sk_test_x");
        expect(mode(file.path)).toBe("600");
      } finally {
        process.umask(previous);
      }
    });

    it("never overwrites a file that is there, and leaves it as it was", async () => {
      const keyId = newKeyId();
      const path = join(dir, `${keyId}.key`);
      writeFileSync(path, "someone else's\n", { mode: 0o644 });
      await refusedWith(writeKeyFile(dir, keyId, "sk_test_new"), "ERR_CONFIG");
      expect(readFileSync(path, "utf8")).toBe("someone else's\n");
      expect(mode(path)).toBe("644");
    });

    it("never writes through a symbolic link in place of the file, dangling or not", async () => {
      const outside = join(root.path, "outside");
      writeFileSync(outside, "untouched\n");
      const keyId = newKeyId();
      symlinkSync(outside, join(dir, `${keyId}.key`));
      const error = await refusedWith(writeKeyFile(dir, keyId, "sk_test_new"), "ERR_CONFIG");
      expect(error.publicMessage).not.toContain(root.path);
      expect(readFileSync(outside, "utf8")).toBe("untouched\n");

      const dangling = newKeyId();
      const target = join(root.path, "would-be-created");
      symlinkSync(target, join(dir, `${dangling}.key`));
      await refusedWith(writeKeyFile(dir, dangling, "sk_test_new"), "ERR_CONFIG");
      expect(existsSync(target)).toBe(false);
    });

    it("checks the directory again at write time: a directory made shared or swapped for a link after start is refused", async () => {
      chmodSync(dir, 0o777);
      const shared = await refusedWith(writeKeyFile(dir, newKeyId(), "sk_test_x"), "ERR_CONFIG");
      expect(shared.publicMessage).toMatch(/writable by its group or by others.*Nothing was created/);
      expect(shared.publicMessage).not.toContain(dir);
      expect(readdirSync(dir)).toEqual([]);

      const elsewhere = join(root.path, "elsewhere");
      mkdirSync(elsewhere, { mode: 0o700 });
      const link = join(root.path, "swapped");
      symlinkSync(elsewhere, link);
      await refusedWith(writeKeyFile(link, newKeyId(), "sk_test_x"), "ERR_CONFIG");
      expect(readdirSync(elsewhere)).toEqual([]);
    });
  });
});

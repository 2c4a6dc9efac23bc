// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

/** A restricted-imports rule for the files of one layer. */
function layer(files, regex, message) {
  return [{ files, rules: { "no-restricted-imports": ["error", { patterns: [{ regex, message }] }] } }];
}

export default tseslint.config(
  { ignores: ["dist/", "coverage/", "node_modules/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["src/**/*.ts", "tools/**/*.ts"],
    rules: {
      // stdout is the MCP protocol channel: one stray line breaks the host's connection.
      "no-console": "error",
      "no-restricted-properties": [
        "error",
        { object: "process", property: "stdout", message: "stdout carries MCP messages only; write through Io or the logger." },
      ],
    },
  },
  {
    // The entry point hands process.stdout to the transport and to one-shot commands.
    files: ["src/index.ts"],
    rules: { "no-restricted-properties": "off" },
  },
  // Layering: the architecture, checked. The domain (keys, audit) knows no storage, no
  // authentication and no tools; storage knows no authentication and no tools; tools know
  // nothing of the entry point and the commands.
  ...layer(["src/keys/**/*.ts", "src/audit/**/*.ts"], "(^|/)(store|auth|cli|http|delivery)/|(^|/)tools/|^(\\.\\./)+(server|services|index)\\.js$", "the domain (keys, audit) must not depend on storage, authentication, transports or tools"),
  ...layer(["src/store/**/*.ts"], "(^|/)(auth|cli|http|delivery)/|(^|/)tools/|^(\\.\\./)+(server|services|index)\\.js$", "storage must not depend on authentication, transports or tools"),
  ...layer(["tools/**/*.ts"], "(^|/)src/(cli|http)/|(^|/)src/(index|services)\\.js$", "tools must not depend on the entry point, the commands or the transports"),
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
);

// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

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
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
);

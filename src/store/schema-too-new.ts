/** The database was written by a newer api-keys-mcp; opening it could corrupt what it knows. */
export class SchemaTooNewError extends Error {
  static readonly code = "ERR_SCHEMA_TOO_NEW";
  readonly code = SchemaTooNewError.code;

  /** `setting` names what points at the database (API_KEYS_MCP_DB, API_KEYS_MCP_DATABASE_URL). */
  constructor(readonly found: number, readonly supported: number, setting = "API_KEYS_MCP_DB") {
    super(
      `the database has schema version ${found}, newer than this api-keys-mcp supports (${supported}); ` +
        `upgrade api-keys-mcp, or point ${setting} at another ${setting === "API_KEYS_MCP_DB" ? "file" : "database"}`,
    );
    this.name = "SchemaTooNewError";
  }
}

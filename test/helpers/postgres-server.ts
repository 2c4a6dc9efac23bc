export { startPostgresServer, type PostgresServer } from "../../scripts/embedded-postgres.js";

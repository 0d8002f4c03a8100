/** How long opening a Postgres connection may take before the caller gets an error (every pool of the services). */
export const PG_CONNECT_TIMEOUT_MS = 10_000;

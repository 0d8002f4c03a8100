export * from './types.js';
export { EventStore } from './event-store.js';
export { matchesExpectedVersion } from './append/expected-version.js';
export { EVENTS_CHANNEL } from './append/append.sql.js';
export { EventStoreSchema1764000000000, eventStoreMigrations, eventStoreMigrations as migrations } from './schema/event-store.migration.js';
export { migrate, runMigrationsLocked, EVENT_STORE_MIGRATIONS_TABLE } from './schema/migrate.js';
export { MAX_EVENT_BYTES, MAX_EVENTS_PER_APPEND, MAX_READ_LIMIT } from './validation/input.validate.js';
export { startOutboxRelay, ensureEventsStream, type OutboxRelay, type OutboxRelayOptions } from './relay/outbox-relay.js';
export { handleWithRetry, type CommandStore, type EventLike, type HandleOptions, type HandleResult, type StreamFold } from './command/handle-with-retry.js';

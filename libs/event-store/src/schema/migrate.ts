import { ChangeoverError } from '@changeover/contracts';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { eventStoreMigrations } from './event-store.migration.js';
import { PG_CONNECT_TIMEOUT_MS } from '../pg-timeouts.js';
import { parseDatabaseUrl } from '../connection/database-url.js';
import { typeormConnection } from '../connection/failover-client.js';

export const EVENT_STORE_MIGRATIONS_TABLE = 'event_store_migrations';
/**
 * Runs a DataSource's pending migrations while holding a session advisory lock named `name`, so
 * several processes starting at once on one database migrate once. Returns the applied names.
 */
export async function runMigrationsLocked(ds: DataSource, name: string, transaction: 'all' | 'each' = 'all'): Promise<string[]> {
  const lock = ds.createQueryRunner();
  try {
    await lock.connect();
    await lock.query('SELECT pg_advisory_lock(hashtext($1))', [name]);
    try {
      return (await ds.runMigrations({ transaction })).map((m) => m.name);
    } finally {
      await lock.query('SELECT pg_advisory_unlock(hashtext($1))', [name]);
    }
  } finally {
    await lock.release();
  }
}

/** Connection settings of a Postgres DataSource, without its entities and migrations. */
function connectionOptions(target: string | DataSource): DataSourceOptions {
  if (typeof target === 'string') {
    parseDatabaseUrl(target, 'url');
    return { type: 'postgres', ...typeormConnection(target) };
  }
  if (!(target instanceof DataSource) || target.options.type !== 'postgres') {
    throw new ChangeoverError('VALIDATION_FAILED', 'migrate() needs a postgres:// url or a Postgres DataSource', { field: 'target' });
  }
  const o = target.options;
  return { type: 'postgres', url: o.url, host: o.host, port: o.port, username: o.username, password: o.password, database: o.database, ssl: o.ssl, extra: o.extra };
}

/**
 * Runs the event-store migrations (idempotent; safe when several processes start at once).
 * Returns the names of the migrations it applied.
 */
export async function migrate(target: string | DataSource): Promise<string[]> {
  const connection = connectionOptions(target);
  const ds = new DataSource({
    ...connection,
    entities: [],
    migrations: eventStoreMigrations,
    migrationsTableName: EVENT_STORE_MIGRATIONS_TABLE,
    migrationsTransactionMode: 'all',
    synchronize: false,
    migrationsRun: false,
    logging: false,
    poolSize: 2,
    extra: { ...(connection as { extra?: object }).extra, connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS },
  } as DataSourceOptions);
  try {
    await ds.initialize();
  } catch (e) {
    // An unreachable server, a wrong database or bad credentials: typed, so callers can tell it from a bug.
    throw new ChangeoverError('UNAVAILABLE', `cannot connect to the event store database: ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    return await runMigrationsLocked(ds, 'changeover:event-store:migrations');
  } finally {
    await ds.destroy();
  }
}

import pg from 'pg';
import { PG_CONNECT_TIMEOUT_MS } from '../pg-timeouts.js';
import { createPgClient } from '../connection/failover-client.js';

/** A held lock: `lost` settles when its connection goes (the lock goes with it). */
export interface HeldLock {
  readonly lost: Promise<void>;
  release(): Promise<void>;
}

export interface ExclusiveLock {
  /** Waits until this process holds the lock; rejects if the connection fails or `cancel` is called. */
  acquire(): Promise<HeldLock>;
  /** Ends a pending `acquire`. */
  cancel(): void;
}

/**
 * A Postgres session advisory lock on a connection of its own: whoever holds it runs the named
 * subscription; the others wait in `pg_advisory_lock` and get it the moment the holder's session
 * ends (a stop, a crash, a dropped connection).
 */
export function advisoryLock(url: string, name: string): ExclusiveLock {
  let waiting: pg.Client | undefined;
  return {
    async acquire() {
      const client = createPgClient(url, { connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS, keepAlive: true });
      let markLost!: () => void;
      const lost = new Promise<void>((resolve) => (markLost = resolve));
      client.on('error', () => markLost());
      client.on('end', () => markLost());
      waiting = client;
      try {
        await client.connect();
        // Waiting is this session's whole job: a statement_timeout or lock_timeout in the URL (the
        // services set one on every connection) would end the wait and log a failure each time.
        await client.query('SET statement_timeout = 0');
        await client.query('SET lock_timeout = 0');
        await client.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [`subscription:${name}`]);
      } catch (e) {
        await client.end().catch(() => undefined);
        throw e;
      } finally {
        if (waiting === client) waiting = undefined;
      }
      return { lost, release: () => client.end().catch(() => undefined) };
    },
    cancel() {
      void waiting?.end().catch(() => undefined);
    },
  };
}

import pg from 'pg';
import { ChangeoverError } from '@changeover/contracts';
import { PG_CONNECT_TIMEOUT_MS, pgConnection, survivesRestarts } from '@changeover/event-store';

/**
 * A Postgres data exception (class 22: text it cannot store, a number out of range) comes from
 * what a client sent: a typed VALIDATION_FAILED instead of an internal error.
 */
export function asDataError(e: unknown): unknown {
  const code = typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : '';
  if (!code.startsWith('22')) return e;
  return new ChangeoverError('VALIDATION_FAILED', `a value cannot be stored: ${e instanceof Error ? e.message : String(e)}`, { pgCode: code });
}

/** Plain SQL for the hot paths (TypeORM runs the migrations): rows back, whatever the command. */
export interface Sql {
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
}

/** A transaction: plain SQL plus its connection, so the event store can append in the same transaction. */
export interface Tx extends Sql {
  readonly client: pg.PoolClient;
}

export class SqlPool implements Sql {
  private constructor(private readonly pool: pg.Pool) {}

  static open(url: string, max = 10): SqlPool {
    // A connection dropped by a Postgres restart (idle, or lent to a transaction) must not crash the process; the next query reconnects.
    const pool = survivesRestarts(new pg.Pool({ ...pgConnection(url), max, connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS }));
    return new SqlPool(pool);
  }

  async query<T = Record<string, unknown>>(text: string, params: unknown[] = []): Promise<T[]> {
    try {
      return (await this.pool.query(text, params)).rows as T[];
    } catch (e) {
      throw asDataError(e);
    }
  }

  /** Runs `work` in one transaction on one connection; rolls back if it throws. */
  async transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await work({ client, query: async <R>(text: string, params: unknown[] = []) => (await client.query(text, params)).rows as R[] });
      await client.query('COMMIT');
      return result;
    } catch (e) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw asDataError(e);
    } finally {
      client.release();
    }
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

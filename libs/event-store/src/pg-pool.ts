import type pg from 'pg';

/**
 * Keeps a pool's process alive through a Postgres restart or a dropped connection. An idle client's
 * error is the pool's ('error'); a checked-out client has no listener of the pool's (pg-pool removes
 * it while the client is lent), so its error would be an unhandled 'error' event that ends the
 * process. Every client gets a listener of its own: the query in flight rejects, the next reconnects.
 */
export function survivesRestarts<P extends pg.Pool>(pool: P, onError: (error: Error) => void = () => undefined): P {
  pool.on('error', onError);
  pool.on('connect', (client) => client.on('error', onError));
  return pool;
}

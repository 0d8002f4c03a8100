import { afterAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { isChangeoverError } from '@changeover/contracts';
import { multiHostUrl, startPostgresServer, waitFor, type TestPostgresServer } from '@changeover/test-kit';
import pg from 'pg';
import { EventStore } from '../event-store.js';
import { primaryResolverOf } from './failover-client.js';

// The event store on servers of its own (never the shared one): kill -9 and start, and a failover to
// a promoted streaming replica behind a multi-host URL. Appends go on through both, each event once.

const servers: TestPostgresServer[] = [];
const stores: EventStore[] = [];
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close().catch(() => undefined)));
  await Promise.all(servers.map((s) => s.stop()));
});

async function rows(url: string, sql: string): Promise<Record<string, unknown>[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(sql)).rows as Record<string, unknown>[];
  } finally {
    await c.end();
  }
}

async function eventIds(url: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<{ event_id: string }>('SELECT event_id FROM events ORDER BY global_position')).rows.map((r) => r.event_id);
  } finally {
    await c.end();
  }
}

/** Appends one event after another to `streams` streams until `stop()`, keeping each acknowledged event id. */
function appendLoop(store: EventStore, streams: number) {
  const acknowledged: string[] = [];
  const failures: string[] = [];
  let running = true;
  const workers = Array.from({ length: streams }, async (_, s) => {
    const streamId = `widget-${s}-${randomUUID().slice(0, 8)}`;
    let version = 0;
    while (running) {
      const id = randomUUID();
      try {
        const r = await store.append(streamId, version, [{ id, type: 'widget.counted', data: { n: version + 1 } }]);
        version = r.nextExpectedVersion;
        acknowledged.push(id);
      } catch (e) {
        failures.push(isChangeoverError(e) ? e.code : String(e));
        await new Promise((r) => setTimeout(r, 200));
        // An UNAVAILABLE append may or may not be in: the next one re-reads the version.
        version = (await store.readStream(streamId).catch(() => [])).at(-1)?.streamPosition ?? version;
      }
    }
  });
  return {
    acknowledged,
    failures,
    async stop() {
      running = false;
      await Promise.all(workers);
    },
  };
}

describe('event store on a restarted or failed-over Postgres', () => {
  it('goes on appending through kill -9 and start of its server, every acknowledged event once', async () => {
    const server = await startPostgresServer();
    servers.push(server);
    const db = await server.createDatabase('es_restart');
    const store = await EventStore.connect({ url: db.url, migrate: true, poolSize: 3 });
    stores.push(store);
    const loop = appendLoop(store, 3);
    await waitFor('appends before the crash', () => loop.acknowledged.length >= 30, { timeoutMs: 60_000 });

    await server.kill('SIGKILL');
    await server.start();
    const atRestart = loop.acknowledged.length;
    await waitFor('appends after the restart', () => loop.acknowledged.length >= atRestart + 30, { timeoutMs: 60_000 });
    await loop.stop();

    const ids = await eventIds(db.url);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual(expect.arrayContaining(loop.acknowledged));
  });

  it('moves to a promoted replica named in a multi-host URL and loses no acknowledged append', async () => {
    const primary = await startPostgresServer();
    servers.push(primary);
    const db = await primary.createDatabase('es_failover');
    const replica = await primary.createReplica({ synchronous: true });
    servers.push(replica);
    const url = multiHostUrl([primary, replica], db.name);
    const store = await EventStore.connect({ url, migrate: true, poolSize: 3 });
    stores.push(store);
    const loop = appendLoop(store, 3);
    await waitFor('appends on the first primary', () => loop.acknowledged.length >= 30, { timeoutMs: 60_000 });

    await primary.kill('SIGKILL');
    const atFailover = loop.acknowledged.length;
    await replica.promote();
    await waitFor('appends on the promoted replica', () => loop.acknowledged.length >= atFailover + 30, { timeoutMs: 60_000 });
    await loop.stop();

    const resolver = primaryResolverOf(url)!;
    expect(await resolver.primary()).toEqual({ host: '127.0.0.1', port: replica.port });
    expect(resolver.switches).toBe(1);
    const ids = await eventIds(replica.url(db.name));
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual(expect.arrayContaining(loop.acknowledged));
    // Reads go to the new primary too.
    expect((await store.readAll(0, 10_000)).length).toBe(ids.length);
  });

  it('leaves a server that turned read-only for the next writable host, reads included', async () => {
    const [a, b] = await Promise.all([startPostgresServer(), startPostgresServer()]);
    servers.push(a, b);
    const dbA = await a.createDatabase('es_ro');
    // The same database name on both, migrated on both: two independent writable servers.
    await rows(b.url(), `CREATE DATABASE "${dbA.name}"`);
    for (const s of [a, b]) await (await EventStore.connect({ url: s.url(dbA.name), migrate: true, poolSize: 1 })).close();
    const url = multiHostUrl([a, b], dbA.name);
    const store = await EventStore.connect({ url, poolSize: 3 });
    stores.push(store);
    await store.append('widget-ro', 0, [{ type: 'widget.counted', data: { n: 1 } }]);
    expect(await primaryResolverOf(url)!.primary()).toEqual({ host: '127.0.0.1', port: a.port });

    await rows(a.url(), 'ALTER SYSTEM SET default_transaction_read_only = on');
    await rows(a.url(), 'SELECT pg_reload_conf()');
    await waitFor('a read-only for new transactions', async () => (await rows(a.url(dbA.name), 'SHOW transaction_read_only'))[0]!['transaction_read_only'] === 'on');

    // Refused on a (25006), retried, written on b.
    const id = randomUUID();
    await store.append('widget-ro-2', 0, [{ id, type: 'widget.counted', data: { n: 1 } }]);
    expect(await primaryResolverOf(url)!.primary()).toEqual({ host: '127.0.0.1', port: b.port });
    expect(await eventIds(b.url(dbA.name))).toEqual([id]);
    // The pool's other connections to a are dropped at their next query instead of reading a's rows.
    for (let i = 0; i < 5; i++) {
      const read = await store.readStream('widget-ro-2').catch((e: unknown) => e);
      if (Array.isArray(read)) expect(read.map((e) => e.id)).toEqual([id]);
      else expect(isChangeoverError(read, 'UNAVAILABLE')).toBe(true);
    }
    expect((await store.readStream('widget-ro-2')).map((e) => e.id)).toEqual([id]);
    expect(await store.readStream('widget-ro')).toEqual([]);
  });

  it('refuses a multi-host URL with a bad port at connect, naming it', async () => {
    await expect(EventStore.connect({ url: 'postgres://postgres@127.0.0.1:5432,127.0.0.1:0/x?target_session_attrs=read-write' })).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
      message: expect.stringContaining('host 2 "127.0.0.1:0": port must be 1..65535'),
    });
  });

  it('fails UNAVAILABLE, naming each host, when no host is read-write', async () => {
    const primary = await startPostgresServer();
    servers.push(primary);
    const replica = await primary.createReplica();
    servers.push(replica);
    await primary.kill('SIGKILL');
    const store = await EventStore.connect({ url: multiHostUrl([primary, replica], 'postgres'), poolSize: 1 });
    stores.push(store);
    const err = await store.readStream('widget-1').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isChangeoverError(err, 'UNAVAILABLE')).toBe(true);
    expect(String((err as Error).message)).toMatch(new RegExp(`127\\.0\\.0\\.1:${primary.port} \\(.*\\), 127\\.0\\.0\\.1:${replica.port} \\(read-only\\)`));
  });
});

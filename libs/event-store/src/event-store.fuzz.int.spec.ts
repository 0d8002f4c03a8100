import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { ChangeoverError, ERROR_CODES } from '@changeover/contracts';
import { createTestDatabase, type TestDatabase } from '@changeover/test-kit';
import pg from 'pg';
import { EventStore } from './event-store.js';

// Property-based fuzzing of the store's public functions: whatever a caller passes, the answer is a
// result or a typed ChangeoverError (never a raw pg error, never a crash), and the store keeps working.
let db: TestDatabase;
let store: EventStore;
let pool: pg.Pool;
const RUNS = 100;

beforeAll(async () => {
  db = await createTestDatabase('es_fuzz');
  store = await EventStore.connect({ url: db.url, migrate: true, poolSize: 2 });
  pool = new pg.Pool({ connectionString: db.url, max: 2 });
});

afterAll(async () => {
  await pool?.end();
  await store?.close();
  await db?.drop();
});

const anything = fc.anything({ maxDepth: 3, withBigInt: true, withDate: true, withMap: true, withSet: true, withNullPrototype: true, withTypedArray: true, withSparseArray: true, withBoxedValues: true });
const text = fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom('', ' x', 'a\u0000b', '\ud800', 'x'.repeat(300), 'rollout-r1', 'ok.stream'));
const version = fc.oneof(anything, fc.constantFrom(0, -1, 1.5, NaN, Infinity, 2 ** 53, 'no-stream', 'stream-exists', 'any', 'none'), fc.integer());
const event = fc.oneof(
  anything,
  fc.record(
    {
      type: fc.oneof(text, fc.constantFrom('rollout.created', 'Rollout.Created', 'a.b.c', 'x'), anything),
      data: fc.oneof(anything, fc.constantFrom('\u0000', { s: '\ud800' }, { big: 1n }, 'x'.repeat(600_000))),
      metadata: fc.oneof(anything, fc.constant(undefined), fc.constant({ actor: 'ops' })),
      id: fc.oneof(fc.constant(undefined), text, fc.uuid(), anything),
    },
    { requiredKeys: [] },
  ),
);
const events = fc.oneof(anything, fc.array(event, { maxLength: 4 }));

/** The call resolves, or rejects with a ChangeoverError of a known code other than INTERNAL. */
async function typed(call: () => Promise<unknown>): Promise<'ok' | string> {
  try {
    await call();
    return 'ok';
  } catch (e) {
    expect(e).toBeInstanceOf(ChangeoverError);
    const code = (e as ChangeoverError).code;
    expect(ERROR_CODES).toContain(code);
    expect(code).not.toBe('INTERNAL');
    return code;
  }
}

async function stillWorks(): Promise<void> {
  const r = await store.append('fuzz-alive', 'any', [{ type: 'fuzz.alive', data: {} }]);
  expect((await store.readStream('fuzz-alive')).at(-1)?.streamPosition).toBe(r.nextExpectedVersion);
}

describe('EventStore public functions under fuzzed arguments', () => {
  it('append: random stream ids, versions and events give a result or a typed error, and bad input is counted', async () => {
    const invalidBefore = store.stats().invalidInputs;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(text, anything), version, events, async (s, v, e) => {
        if ((await typed(() => store.append(s as string, v as number, e as never))) !== 'ok') refused++;
      }),
      { numRuns: RUNS },
    );
    expect(refused).toBeGreaterThan(0);
    expect(store.stats().invalidInputs - invalidBefore).toBeGreaterThan(0);
    await stillWorks();
  });

  it('readStream, readAll, checkpoint and headPosition: random arguments give a result or a typed error', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(text, anything), anything, fc.oneof(anything, fc.bigInt(), fc.integer()), fc.oneof(anything, fc.integer()), async (s, options, after, limit) => {
        await typed(() => store.readStream(s as string, options as never));
        await typed(() => store.readAll(after as number, limit as number));
        await typed(() => store.checkpoint(s as string));
      }),
      { numRuns: RUNS },
    );
    await typed(() => store.headPosition());
    await stillWorks();
  });

  it('appendInTransaction: garbage clients, no transaction, aborted transactions and random appends give typed errors', async () => {
    const client = await pool.connect();
    try {
      await fc.assert(
        fc.asyncProperty(fc.constantFrom('real-tx', 'no-tx', 'aborted', 'garbage'), anything, fc.oneof(text, anything), version, events, async (mode, garbage, s, v, e) => {
          if (mode === 'real-tx' || mode === 'aborted') await client.query('BEGIN');
          if (mode === 'aborted') await client.query('SELECT 1/0').catch(() => undefined);
          try {
            await typed(() => store.appendInTransaction((mode === 'garbage' ? garbage : client) as pg.PoolClient, s as string, v as number, e as never));
          } finally {
            if (mode === 'real-tx' || mode === 'aborted') await client.query('ROLLBACK');
          }
        }),
        { numRuns: RUNS },
      );
    } finally {
      client.release();
    }
    await stillWorks();
  });

  it('subscribe and connect: random names, handlers and options give a subscription or a typed error', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(text, anything), fc.oneof(anything, fc.constant(() => undefined)), anything, async (name, handler, options) => {
        let sub: Awaited<ReturnType<EventStore['subscribe']>> | undefined;
        await typed(async () => {
          sub = await store.subscribe(name as string, handler as never, options as never);
        });
        await sub?.stop();
        await typed(async () => (await EventStore.connect(options as never)).close());
      }),
      { numRuns: 50 },
    );
    expect(await typed(() => EventStore.connect({ url: 'postgres://postgres@127.0.0.1:1/none', migrate: true }))).toBe('UNAVAILABLE');
    await stillWorks();
  });

  it('a closed store answers every call with a typed error', async () => {
    const closed = await EventStore.connect({ url: db.url, poolSize: 1 });
    await closed.close();
    expect(await typed(() => closed.append('s-1', 'any', [{ type: 'fuzz.closed', data: {} }]))).toBe('UNAVAILABLE');
    expect(await typed(() => closed.readStream('s-1'))).toBe('UNAVAILABLE');
    expect(await typed(() => closed.readAll(0, 10))).toBe('UNAVAILABLE');
    expect(await typed(() => closed.headPosition())).toBe('UNAVAILABLE');
    expect(await typed(() => closed.checkpoint('x'))).toBe('UNAVAILABLE');
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      expect(await typed(() => closed.appendInTransaction(client, 's-1', 'any', [{ type: 'fuzz.closed', data: {} }]))).toBe('UNAVAILABLE');
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
  });
});

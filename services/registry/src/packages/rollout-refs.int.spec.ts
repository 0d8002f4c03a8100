import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { eventSubject, RolloutPolicy, STREAMS, toCloudEvent, type EventData } from '@changeover/contracts';
import { ensureEventsStream } from '@changeover/event-store';
import { createLogger } from '@changeover/telemetry';
import { createTestDatabase, startNats, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import { openDatabase } from '../db/data-source.js';
import { SqlPool } from '../db/sql.js';
import { refsDurable, REF_EVENT_TYPES, startRolloutRefs } from './rollout-refs.js';

jest.setTimeout(60_000);

const log = createLogger('registry-test', { level: 'silent' });

describe('rollout references on real NATS and Postgres', () => {
  let pgdb: TestDatabase;
  let nats: TestNats;
  let nc: NatsConnection;
  let db: SqlPool;
  let refs: { stop(): Promise<void> } | undefined;
  let position = 0;

  const created = (rolloutId: string, packages: { name: string; version: string }[]): EventData<'rollout.created'> => ({
    rolloutId,
    update: { description: '', targets: [{ classes: ['edge'], packages }] },
    policy: RolloutPolicy.parse({}),
    assignments: [],
    unsupported: [],
    createdBy: 'test',
    at: new Date().toISOString(),
  });
  const finished = (type: 'rollout.completed' | 'rollout.failed' | 'rollout.cancelled', rolloutId: string) =>
    type === 'rollout.completed'
      ? { rolloutId, nodes: 1, failed: 0, at: new Date().toISOString() }
      : type === 'rollout.failed'
        ? { rolloutId, reason: 'test', at: new Date().toISOString() }
        : { rolloutId, by: 'test', reason: 'test', at: new Date().toISOString() };
  /** Publishes one event to CHANGEOVER_EVENTS as the outbox relay does. */
  const publish = async (type: string, data: unknown) => {
    const ce = toCloudEvent({ id: randomUUID(), type, streamId: `rollout-${(data as { rolloutId: string }).rolloutId}`, globalPosition: ++position, data, createdAt: new Date() });
    await jetstream(nc).publish(eventSubject(type), JSON.stringify(ce));
  };
  const refsOf = async (rolloutId: string) =>
    (await db.query<{ id: string }>(`SELECT name || '@' || version AS id FROM registry_rollout_refs WHERE rollout_id = $1 ORDER BY 1`, [rolloutId])).map((r) => r.id);
  const isFinished = async (rolloutId: string) => (await db.query(`SELECT 1 FROM registry_finished_rollouts WHERE rollout_id = $1`, [rolloutId])).length === 1;
  /** What a consumer has acknowledged, so a test can wait for an event to have been handled. */
  const acked = async (durable: string) => (await (await jetstreamManager(nc)).consumers.info(STREAMS.events, durable)).ack_floor.stream_seq;
  const lastSeq = async () => (await (await jetstreamManager(nc)).streams.info(STREAMS.events)).state.last_seq;

  beforeAll(async () => {
    pgdb = await createTestDatabase('registry_refs');
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    await (await openDatabase(pgdb.url)).destroy();
    db = SqlPool.open(pgdb.url);
  });

  beforeEach(async () => {
    await ensureEventsStream(await jetstreamManager(nc), STREAMS.events, 120_000);
  });

  afterEach(async () => {
    await refs?.stop();
    refs = undefined;
    // A fresh stream and consumers for each test.
    await (await jetstreamManager(nc)).streams.delete(STREAMS.events);
    await db.query('DELETE FROM registry_rollout_refs');
    await db.query('DELETE FROM registry_finished_rollouts');
  });

  afterAll(async () => {
    await db.close();
    await nc.close();
    await nats.stop();
    await pgdb.drop();
  });

  it('adds the packages of a created rollout and removes them when it completes, fails or is cancelled', async () => {
    refs = await startRolloutRefs(nc, db, log);
    for (const [i, type] of (['rollout.completed', 'rollout.failed', 'rollout.cancelled'] as const).entries()) {
      const id = `r-${i}`;
      await publish('rollout.created', created(id, [{ name: 'tool', version: `1.${i}.0` }, { name: 'lib', version: '2.0.0' }]));
      await waitFor(`references of ${id}`, async () => (await refsOf(id)).length === 2);
      expect(await refsOf(id)).toEqual(['lib@2.0.0', `tool@1.${i}.0`]);
      await publish(type, finished(type, id));
      await waitFor(`references of ${id} released after ${type}`, async () => (await refsOf(id)).length === 0 && (await isFinished(id)));
    }
  });

  it('does not receive the rest of a rollout stream: each consumer gets only its own subject', async () => {
    refs = await startRolloutRefs(nc, db, log);
    await publish('rollout.created', created('busy', [{ name: 'tool', version: '3.0.0' }]));
    for (let i = 0; i < 20; i++) await publish('rollout.wave-started', { rolloutId: 'busy', wave: i, nodes: [], at: new Date().toISOString() });
    await publish('rollout.completed', finished('rollout.completed', 'busy'));
    await waitFor('rollout released', async () => (await isFinished('busy')) && (await refsOf('busy')).length === 0);
    const jsm = await jetstreamManager(nc);
    const delivered = await Promise.all(REF_EVENT_TYPES.map(async (t) => (await jsm.consumers.info(STREAMS.events, refsDurable(t))).delivered.consumer_seq));
    // created: 1, completed: 1, failed: 0, cancelled: 0 — none of the 20 other events.
    expect(delivered).toEqual([1, 1, 0, 0]);
  });

  it('a created event handled after its rollout finished records no references (out of order across consumers)', async () => {
    // The finished event is in the stream first, so its consumer handles it before the created one can.
    await publish('rollout.failed', finished('rollout.failed', 'late'));
    refs = await startRolloutRefs(nc, db, log);
    await waitFor('finished rollout recorded', () => isFinished('late'));
    await publish('rollout.created', created('late', [{ name: 'tool', version: '4.0.0' }]));
    const seq = await lastSeq();
    await waitFor('late created event handled', async () => (await acked(refsDurable('rollout.created'))) >= seq);
    expect(await refsOf('late')).toEqual([]);

    // Both in the stream before the consumers start, in the wrong order: same outcome.
    await refs.stop();
    await publish('rollout.cancelled', finished('rollout.cancelled', 'late-2'));
    await publish('rollout.created', created('late-2', [{ name: 'tool', version: '5.0.0' }]));
    const seq2 = await lastSeq();
    refs = await startRolloutRefs(nc, db, log);
    await waitFor('both handled', async () => (await acked(refsDurable('rollout.created'))) >= seq2 && (await isFinished('late-2')));
    expect(await refsOf('late-2')).toEqual([]);
  });

  it('resumes after a restart without losing or replaying events (durable consumers)', async () => {
    refs = await startRolloutRefs(nc, db, log);
    await publish('rollout.created', created('a', [{ name: 'tool', version: '6.0.0' }]));
    await waitFor('a referenced', async () => (await refsOf('a')).length === 1);
    await refs.stop();
    // Published while no registry follows the stream.
    await publish('rollout.created', created('b', [{ name: 'tool', version: '7.0.0' }]));
    await publish('rollout.completed', finished('rollout.completed', 'a'));
    refs = await startRolloutRefs(nc, db, log);
    await waitFor('b referenced and a released', async () => (await refsOf('b')).length === 1 && (await refsOf('a')).length === 0);
  });

  it('takes over from the single consumer of earlier versions after what it acknowledged, and deletes it', async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.consumers.add(STREAMS.events, { durable_name: 'registry-rollout-refs', filter_subject: 'changeover.events.rollout.>', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All });
    // Seen by the old consumer: "old" was created and has finished (its references are gone).
    await publish('rollout.created', created('old', [{ name: 'tool', version: '8.0.0' }]));
    await publish('rollout.completed', finished('rollout.completed', 'old'));
    const legacy = await jetstream(nc).consumers.get(STREAMS.events, 'registry-rollout-refs');
    for (let i = 0; i < 2; i++) (await legacy.next({ expires: 5000 }))!.ack();
    await waitFor('old consumer acknowledged both', async () => (await acked('registry-rollout-refs')) === 2);
    // Not seen by it yet.
    await publish('rollout.created', created('new', [{ name: 'tool', version: '9.0.0' }]));

    refs = await startRolloutRefs(nc, db, log);
    await waitFor('new referenced', async () => (await refsOf('new')).length === 1);
    expect(await refsOf('old')).toEqual([]);
    expect(await acked(refsDurable('rollout.created'))).toBe(3);
    await expect(jsm.consumers.info(STREAMS.events, 'registry-rollout-refs')).rejects.toThrow();
  });
});

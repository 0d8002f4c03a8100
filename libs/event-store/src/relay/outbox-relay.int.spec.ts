import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { CloudEvent, eventSubject, STREAMS } from '@changeover/contracts';
import { createTestDatabase, startNats, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import { jetstream, jetstreamManager, StorageType, type JsMsg } from '@nats-io/jetstream';
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import { EventStore } from '../event-store.js';
import { startOutboxRelay } from './outbox-relay.js';


// Real engines on a shared 2-core machine: generous deadlines, never sleeps.
jest.setTimeout(60_000);
let db: TestDatabase;
let server: TestNats;
let store: EventStore;
let nc: NatsConnection;

beforeAll(async () => {
  [db, server] = await Promise.all([createTestDatabase('es_relay'), startNats()]);
  store = await EventStore.connect({ url: db.url, migrate: true, poolSize: 3 });
  nc = await connect({ servers: server.url });
});

afterAll(async () => {
  await nc?.close();
  await store?.close();
  await Promise.all([db?.drop(), server?.stop()]);
});

async function readStream(count: number): Promise<JsMsg[]> {
  const consumer = await jetstream(nc).consumers.get(STREAMS.events);
  const messages: JsMsg[] = [];
  const iter = await consumer.fetch({ max_messages: count, expires: 5000 });
  for await (const m of iter) messages.push(m);
  return messages;
}

const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

describe('outbox relay', () => {
  it('creates the stream and publishes every event once, in global order, as a CloudEvent with id and trace headers', async () => {
    await store.append('rollout-r1', 'no-stream', [
      { type: 'rollout.created', data: { rolloutId: 'r1' }, metadata: { traceparent: TRACEPARENT } },
      { type: 'rollout.proposed', data: { rolloutId: 'r1' } },
    ]);
    await store.append('node-n1', 'no-stream', [{ type: 'node.enrolled', data: { nodeId: 'n1' }, metadata: { traceparent: 'not a traceparent\r\n' } }]);
    const relay = await startOutboxRelay({ store, nats: nc, source: 'changeover/test', batchSize: 2 });
    try {
      const info = await (await jetstreamManager(nc)).streams.info(STREAMS.events);
      expect(info.config.subjects).toEqual(['changeover.events.>']);
      expect(info.config.duplicate_window).toBe(nanos(120_000));
      expect(info.config.storage).toBe(StorageType.File);

      await relay.caughtUpTo(await store.headPosition(), 20_000);
      expect(relay.lag()).toBe(0);
      const stored = await store.readAll(0, 100);
      const messages = await readStream(3);
      expect(messages.map((m) => m.subject)).toEqual(stored.map((e) => eventSubject(e.type)));
      expect(messages.map((m) => m.headers?.get('Nats-Msg-Id'))).toEqual(stored.map((e) => e.id));
      expect(messages.map((m) => m.headers?.get('traceparent') ?? '')).toEqual([TRACEPARENT, '', '']);
      const ce = CloudEvent.parse(messages[0]!.json());
      expect(ce).toMatchObject({ id: stored[0]!.id, source: 'changeover/test', type: 'io.changeover.rollout.created', subject: 'r1', changeoverstream: 'rollout-r1', traceparent: TRACEPARENT, data: { rolloutId: 'r1' } });
      expect(CloudEvent.parse(messages[2]!.json()).changeoversequence).toBe(Number(stored[2]!.globalPosition));
    } finally {
      await relay.stop();
    }
  });

  it('replays from an older checkpoint without doubling the stream (Nats-Msg-Id de-duplication)', async () => {
    await store.append('rollout-r2', 'no-stream', [{ type: 'rollout.created', data: { rolloutId: 'r2' } }]);
    // As after a crash between the acks and the checkpoint: the relay starts from scratch.
    await store.pool.query(`UPDATE subscription_checkpoints SET position = 0 WHERE subscription_id = 'outbox-relay'`);
    const relay = await startOutboxRelay({ store, nats: nc });
    try {
      await relay.caughtUpTo(await store.headPosition(), 20_000);
      const info = await (await jetstreamManager(nc)).streams.info(STREAMS.events);
      expect(info.state.messages).toBe(4);
    } finally {
      await relay.stop();
    }
  });

  it('keeps relaying while NATS restarts, and reports lag meanwhile', async () => {
    const relay = await startOutboxRelay({ store, nats: nc, pollMs: 50, onError: () => undefined });
    try {
      await server.restart();
      await store.append('rollout-r3', 'no-stream', [{ type: 'rollout.created', data: { rolloutId: 'r3' } }]);
      await waitFor('the relay to learn of the new event', () => relay.lag() >= 1 || relay.position() === 5n);
      await relay.caughtUpTo(await store.headPosition(), 30_000);
      expect(relay.lag()).toBe(0);
      const info = await (await jetstreamManager(nc)).streams.info(STREAMS.events);
      expect(info.state.messages).toBe(5);
    } finally {
      await relay.stop();
    }
  });

  it('rejects bad options with typed errors', async () => {
    await expect(startOutboxRelay({ store: undefined as never, nats: nc })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(startOutboxRelay({ store, nats: {} as never })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(startOutboxRelay({ store, nats: nc, streamName: 'bad.name' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(startOutboxRelay({ store, nats: nc, batchSize: 0 })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(startOutboxRelay({ store, nats: nc, source: '' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
  });
});

import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { CloudEvent, STREAMS } from '@changeover/contracts';
import { createTestDatabase, startNats, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { EventStore } from '../event-store.js';

jest.setTimeout(180_000);

const ROOT = process.cwd();
const RELAY = join(ROOT, 'libs/event-store/dist/relay.main.js');
const EVENTS = 10_000;

let db: TestDatabase;
let server: TestNats;
let store: EventStore;
let nc: NatsConnection;
const children: ChildProcess[] = [];

function startRelay(): ChildProcess {
  const child = spawn(process.execPath, [RELAY], {
    env: { ...process.env, DATABASE_URL: db.url, NATS_URL: server.url, RELAY_BATCH_SIZE: '250' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.resume();
  child.stderr?.resume();
  children.push(child);
  return child;
}

beforeAll(async () => {
  // The relay runs from dist as it does in production; build it (a no-op when `npm test` already did).
  execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-b', 'libs/event-store'], { cwd: ROOT, stdio: 'inherit' });
  [db, server] = await Promise.all([createTestDatabase('es_crash'), startNats()]);
  store = await EventStore.connect({ url: db.url, migrate: true, poolSize: 2 });
  nc = await connect({ servers: server.url });
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await nc?.close();
  await store?.close();
  await Promise.all([db?.drop(), server?.stop()]);
});

describe('outbox relay crash', () => {
  it('after a SIGKILL part way through 10,000 events and a restart, the stream holds every event exactly once in global order', async () => {
    for (let round = 0; round < 10; round++) {
      await Promise.all(Array.from({ length: EVENTS / 10 }, (_, s) => store.append(`rollout-${s}`, round, [{ type: 'rollout.node-progressed', data: { s, round } }])));
    }
    const head = await store.headPosition();
    expect(head).toBe(BigInt(EVENTS));

    const first = startRelay();
    await waitFor('the first relay to get part way', async () => (await store.checkpoint('outbox-relay')) >= 1000n, { timeoutMs: 60_000, intervalMs: 5 });
    first.kill('SIGKILL');
    await once(first, 'exit');
    const atKill = await store.checkpoint('outbox-relay');
    expect(atKill).toBeLessThan(BigInt(EVENTS)); // it really died part way

    const second = startRelay();
    await waitFor('the restarted relay to catch up', async () => (await store.checkpoint('outbox-relay')) === head, { timeoutMs: 120_000, intervalMs: 50 });
    second.kill('SIGTERM');
    const [code] = (await once(second, 'exit')) as [number | null];
    expect(code).toBe(0);

    const info = await (await jetstreamManager(nc)).streams.info(STREAMS.events);
    expect(info.state.messages).toBe(EVENTS);
    const consumer = await jetstream(nc).consumers.get(STREAMS.events);
    const sequences: number[] = [];
    const ids = new Set<string>();
    let headerMismatch = 0;
    for await (const m of await consumer.fetch({ max_messages: EVENTS, expires: 30_000 })) {
      const ce = CloudEvent.parse(m.json());
      sequences.push(ce.changeoversequence);
      ids.add(ce.id);
      if (m.headers?.get('Nats-Msg-Id') !== ce.id) headerMismatch++;
      if (sequences.length === EVENTS) break;
    }
    expect(sequences).toEqual(Array.from({ length: EVENTS }, (_, i) => i + 1));
    expect(ids.size).toBe(EVENTS);
    expect(headerMismatch).toBe(0);
  });
});

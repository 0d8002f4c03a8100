import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createHash } from 'node:crypto';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { MODULE_BUCKET, STREAMS } from '@changeover/contracts';
import { ensureEventsStream, EventStore, startOutboxRelay, type OutboxRelay } from '@changeover/event-store';
import { createTestDatabase, startNatsCluster, waitFor, type TestDatabase, type TestNatsCluster } from '@changeover/test-kit';
import { BlobStore } from '../packages/blob.store.js';

// The registry's JetStream state (events stream, module object store) on a real three-server
// cluster with NATS_STREAM_REPLICAS=3: the events stream's leader is killed with SIGKILL while the
// outbox relay publishes; the relay's connection moves to another server, publishing goes on, and
// JetStream ends with exactly the events Postgres holds (Nats-Msg-Id de-duplicates the retries).

jest.setTimeout(120_000);
let cluster: TestNatsCluster;
let db: TestDatabase;
let store: EventStore;
let admin: NatsConnection;
let jsm: JetStreamManager;

beforeAll(async () => {
  [cluster, db] = await Promise.all([startNatsCluster(3), createTestDatabase('reg_cluster')]);
  store = await EventStore.connect({ url: db.url, migrate: true, poolSize: 4 });
  admin = await connect({ servers: cluster.urls, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  jsm = await jetstreamManager(admin);
});

afterAll(async () => {
  await admin?.close();
  await store?.close();
  await Promise.all([db?.drop(), cluster?.stop()]);
});

/** Every Nats-Msg-Id in the stream, read message by message from its first to its last sequence. */
async function streamMsgIds(name: string): Promise<string[]> {
  const info = await jsm.streams.info(name);
  const ids: string[] = [];
  for (let from = info.state.first_seq; info.state.messages > 0 && from <= info.state.last_seq; from += 64) {
    const seqs = Array.from({ length: Math.min(64, info.state.last_seq - from + 1) }, (_, i) => from + i);
    for (const m of await Promise.all(seqs.map((seq) => jsm.streams.getMessage(name, { seq })))) if (m) ids.push(m.header.get('Nats-Msg-Id'));
  }
  return ids;
}

describe('registry JetStream state on a three-server cluster', () => {
  it('keeps three replicas of the events stream and the module store, and loses or doubles no event when the stream leader is killed mid-traffic', async () => {
    // The product's own code creates both with NATS_STREAM_REPLICAS=3.
    await ensureEventsStream(jsm, STREAMS.events, 120_000, 3);
    const blobs = await BlobStore.open(admin, MODULE_BUCKET, 3);
    for (const name of [STREAMS.events, `OBJ_${MODULE_BUCKET}`]) {
      const info = await jsm.streams.info(name);
      expect({ name, replicas: info.config.num_replicas, peers: 1 + (info.cluster?.replicas?.length ?? 0) }).toEqual({ name, replicas: 3, peers: 3 });
    }
    const module = new TextEncoder().encode('module bytes that must survive the loss of a server');
    const digest = `sha256:${createHash('sha256').update(module).digest('hex')}`;
    expect(await blobs.putBytes(digest, module, 1 << 20)).toBe(true);

    // The relay's connection starts on the events stream's leader, so killing the leader cuts it.
    const leader = (await jsm.streams.info(STREAMS.events)).cluster!.leader!;
    const others = cluster.servers.filter((s) => s.name !== leader);
    const nc = await connect({ servers: [cluster.server(leader).url, ...others.map((s) => s.url)], noRandomize: true, maxReconnectAttempts: -1, reconnectTimeWait: 100, name: 'relay-under-test' });
    const reconnectedTo: string[] = [];
    void (async () => {
      for await (const s of nc.status()) if (s.type === 'reconnect') reconnectedTo.push(s.server);
    })();
    let relay: OutboxRelay | undefined;
    let writing = true;
    let appended = 0;
    let appendedAfterKill = 0;
    let killed = false;
    const writer = (async () => {
      while (writing) {
        await store.append(`rollout-f${appended}`, 'no-stream', [{ type: 'rollout.created', data: { rolloutId: `f${appended}` } }]);
        appended++;
        if (killed) appendedAfterKill++;
      }
    })();
    try {
      relay = await startOutboxRelay({ store, nats: nc, replicas: 3, pollMs: 20, batchSize: 50, onError: () => undefined });
      const r = relay;
      await waitFor('100 events relayed before the kill', () => r.position() >= 100n, { timeoutMs: 30_000 });

      await cluster.kill(leader);
      killed = true;
      const positionAtKill = r.position();

      await waitFor('the relay connection on another server', () => reconnectedTo.length > 0, { timeoutMs: 30_000 });
      expect(others.map((s) => s.url.replace('nats://', ''))).toContain(reconnectedTo[0]!.replace('nats://', ''));
      await waitFor('a new leader of the events stream', async () => {
        const l = (await jsm.streams.info(STREAMS.events)).cluster?.leader;
        return l && l !== leader ? l : undefined;
      }, { timeoutMs: 30_000 });
      // Publishing goes on after the kill: 200 more events reach JetStream through the new leader.
      await waitFor('200 events relayed after the kill', () => r.position() >= positionAtKill + 200n, { timeoutMs: 60_000 });
      writing = false;
      await writer;
      expect(appendedAfterKill).toBeGreaterThan(0);
      await r.caughtUpTo(await store.headPosition(), 60_000);
      expect(r.lag()).toBe(0);
    } finally {
      writing = false;
      await writer.catch(() => undefined);
      await relay?.stop();
      await nc.close();
    }

    const stored: string[] = [];
    for (let page = await store.readAll(0, 10_000); page.length > 0; page = await store.readAll(page[page.length - 1]!.globalPosition, 10_000)) stored.push(...page.map((e) => e.id));
    expect(stored).toHaveLength(appended);
    const published = await streamMsgIds(STREAMS.events);
    expect(new Set(published).size).toBe(published.length); // nothing doubled
    expect([...published].sort()).toEqual([...stored].sort()); // nothing lost, nothing extra

    // The module written before the kill is still readable from the two servers left.
    expect(await blobs.size(digest)).toBe(module.length);
    const after = await jsm.streams.info(STREAMS.events);
    expect(after.cluster!.leader).not.toBe(leader);
    expect(after.cluster!.replicas!.find((p) => p.name === leader)).toMatchObject({ current: false }); // the killed server, behind the new leader
  });
});

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNats, startNatsCluster, type TestNats, type TestNatsCluster } from '@changeover/test-kit';
import { ensureStream } from './index.js';

// NATS_STREAM_REPLICAS on real servers: a three-server cluster moves an existing stream to the
// configured count; a single server that cannot hold three copies fails start-up with CONFLICT.

describe('stream replicas on a three-server cluster', () => {
  let cluster: TestNatsCluster;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    cluster = await startNatsCluster(3);
    nc = await connect({ servers: cluster.urls });
    jsm = await jetstreamManager(nc);
  });

  afterAll(async () => {
    await nc?.close();
    await cluster?.stop();
  });

  it('creates a missing stream with the configured replicas, on three distinct servers', async () => {
    await ensureStream(jsm, { name: 'R3_NEW', subjects: ['r3.new.>'], replicas: 3 });
    const info = await jsm.streams.info('R3_NEW');
    expect(info.config.num_replicas).toBe(3);
    const servers = [info.cluster?.leader, ...(info.cluster?.replicas ?? []).map((r) => r.name)];
    expect(new Set(servers).size).toBe(3);
  });

  it('moves an existing one-replica stream to three, keeping its messages', async () => {
    await ensureStream(jsm, { name: 'R1_OLD', subjects: ['r1.old.>'] });
    expect((await jsm.streams.info('R1_OLD')).config.num_replicas).toBe(1);
    const js = (await import('@nats-io/jetstream')).jetstream(nc);
    for (let i = 0; i < 5; i++) await js.publish(`r1.old.${i}`, `m${i}`);
    await ensureStream(jsm, { name: 'R1_OLD', subjects: ['r1.old.>'], replicas: 3 });
    const info = await jsm.streams.info('R1_OLD');
    expect({ replicas: info.config.num_replicas, messages: info.state.messages }).toEqual({ replicas: 3, messages: 5 });
    // Idempotent: a second start with the same count changes nothing.
    await ensureStream(jsm, { name: 'R1_OLD', subjects: ['r1.old.>'], replicas: 3 });
    expect((await jsm.streams.info('R1_OLD')).config.num_replicas).toBe(3);
  });

  it('refuses more replicas than servers with CONFLICT naming the stream and both counts', async () => {
    await ensureStream(jsm, { name: 'R3_FIVE', subjects: ['r3.five.>'], replicas: 3 });
    await expect(ensureStream(jsm, { name: 'R3_FIVE', subjects: ['r3.five.>'], replicas: 5 })).rejects.toMatchObject({
      code: 'CONFLICT',
      details: { stream: 'R3_FIVE', currentReplicas: 3, configuredReplicas: 5 },
    });
    expect((await jsm.streams.info('R3_FIVE')).config.num_replicas).toBe(3);
  });
});

describe('stream replicas on a single server', () => {
  let server: TestNats;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    server = await startNats();
    nc = await connect({ servers: server.url });
    jsm = await jetstreamManager(nc);
  });

  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  it('fails with CONFLICT when an existing stream cannot get three replicas, and leaves it as it was', async () => {
    await ensureStream(jsm, { name: 'SINGLE', subjects: ['single.>'] });
    await expect(ensureStream(jsm, { name: 'SINGLE', subjects: ['single.>'], replicas: 3 })).rejects.toMatchObject({
      code: 'CONFLICT',
      message: expect.stringMatching(/stream SINGLE has 1 replica\(s\), NATS_STREAM_REPLICAS is 3/),
    });
    expect((await jsm.streams.info('SINGLE')).config.num_replicas).toBe(1);
  });

  it('does not create a stream with fewer replicas than configured', async () => {
    await expect(ensureStream(jsm, { name: 'SINGLE_NEW', subjects: ['single-new.>'], replicas: 3 })).rejects.toMatchObject({ details: { stream: 'SINGLE_NEW', configuredReplicas: 3 } });
  });
});

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startNats, type TestNats } from '@changeover/test-kit';
import { jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect, headers, nanos, type NatsConnection } from '@nats-io/transport-node';
import { PipelinedPublisher } from './pipelined-publisher.js';

let server: TestNats;
let nc: NatsConnection;

beforeAll(async () => {
  server = await startNats();
  nc = await connect({ servers: server.url });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'PIPE', subjects: ['pipe.>'], storage: StorageType.Memory, duplicate_window: nanos(60_000) });
  await jsm.streams.add({ name: 'OTHER', subjects: ['other.>'], storage: StorageType.Memory });
});

afterAll(async () => {
  await nc?.close();
  await server?.stop();
});

const message = (subject: string, id: string) => {
  const h = headers();
  h.set('Nats-Msg-Id', id);
  return { subject, payload: `payload ${id}`, headers: h };
};

describe('pipelined JetStream publisher', () => {
  it('resolves when every message is stored, and a message id published again is dropped by the stream', async () => {
    const p = new PipelinedPublisher(nc, 'PIPE');
    await p.publishAll(Array.from({ length: 500 }, (_, i) => message(`pipe.a.${i % 7}`, `m-${i}`)));
    await p.publishAll([message('pipe.a.1', 'm-3'), message('pipe.a.1', 'm-500')]);
    const info = await (await jetstreamManager(nc)).streams.info('PIPE');
    expect(info.state.messages).toBe(501);
    p.close();
  });

  it('rejects with a typed error when no stream takes the subject or the expected stream is another one, after every ack settled', async () => {
    const p = new PipelinedPublisher(nc, 'PIPE');
    await expect(p.publishAll([message('pipe.b.1', 'b-1'), message('nobody.listens', 'b-2')])).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/no JetStream stream/) });
    await expect(p.publishAll([message('other.x', 'b-3')])).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/refused/) });
    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info('OTHER')).state.messages).toBe(0);
    // The good message of the failed batch was stored; publishing the batch again de-duplicates it.
    await p.publishAll([message('pipe.b.1', 'b-1')]);
    expect((await jsm.streams.getMessage('PIPE', { last_by_subj: 'pipe.b.1' }))?.string()).toBe('payload b-1');
    p.close();
    await expect(p.publishAll([message('pipe.c', 'c-1')])).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });
});

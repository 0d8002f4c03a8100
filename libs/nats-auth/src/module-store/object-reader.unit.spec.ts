import { createHash } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { ClosedConnectionError, type NatsConnection } from '@nats-io/transport-node';
import { readObject } from './object-reader.js';

// The reader asks again while a message get gets no answer or JetStream's 503 (a server down, a stream
// electing its leader), within failoverMs; other errors and a closed connection fail at once.

const BUCKET = 'mods';
const DATA = Buffer.from('a module of two chunks, read by sequence');
const CHUNKS = [DATA.subarray(0, 20), DATA.subarray(20)];
const digest = `SHA-256=${createHash('sha256').update(DATA).digest('base64').replace(/\+/g, '-').replace(/\//g, '_')}`; // as nats.js writes it: URL alphabet, padded
const meta = { name: 'm', nuid: 'NUID1', size: DATA.length, chunks: 2, digest };

/** A fake connection: message gets answered from two chunks (seq 1, 2) and the metadata (seq 3), after `faults`. */
function fakeNats(faults: (Error | { code: number; description: string })[]) {
  const calls: Record<string, unknown>[] = [];
  const answer = (body: unknown) => ({ json: () => body });
  const nc = {
    request: async (_subject: string, payload: string) => {
      const q = JSON.parse(payload) as Record<string, unknown>;
      calls.push(q);
      const fault = faults.shift();
      if (fault instanceof Error) throw fault;
      if (fault) return answer({ error: fault });
      if ('last_by_subj' in q) return answer({ message: { subject: 'meta', seq: 3, data: Buffer.from(JSON.stringify(meta)).toString('base64') } });
      const seq = q['seq'] as number;
      return answer({ message: { subject: 'chunk', seq, data: CHUNKS[seq - 1]!.toString('base64') } });
    },
  };
  return { nc: nc as unknown as NatsConnection, calls };
}

describe('readObject through a failover', () => {
  it('asks again after timeouts and a 503, and returns the whole object', async () => {
    const { nc, calls } = fakeNats([new Error('TIMEOUT'), { code: 503, description: 'JetStream system temporarily unavailable' }, new Error('TIMEOUT')]);
    const bytes = await readObject(nc, 'm', { bucket: BUCKET, failoverMs: 10_000 });
    expect(Buffer.from(bytes).equals(DATA)).toBe(true);
    expect(calls).toHaveLength(6); // three faults, then the metadata and two chunks
  });

  it('fails UNAVAILABLE with the attempts once failoverMs has passed', async () => {
    const { nc } = fakeNats(Array.from({ length: 50 }, () => new Error('TIMEOUT')));
    await expect(readObject(nc, 'm', { bucket: BUCKET, failoverMs: 500 })).rejects.toMatchObject({ code: 'UNAVAILABLE', details: { attempts: expect.any(Number) } });
  });

  it('does not ask again on a closed connection or an error reply other than 503', async () => {
    const closed = fakeNats([new ClosedConnectionError()]);
    await expect(readObject(closed.nc, 'm', { bucket: BUCKET })).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringContaining('closed') });
    expect(closed.calls).toHaveLength(1);
    const refused = fakeNats([{ code: 500, description: 'internal' }]);
    await expect(readObject(refused.nc, 'm', { bucket: BUCKET })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(refused.calls).toHaveLength(1);
  });
});

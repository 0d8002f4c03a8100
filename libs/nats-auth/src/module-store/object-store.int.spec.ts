import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { MODULE_BUCKET, isChangeoverError } from '@changeover/contracts';
import { waitFor } from '@changeover/test-kit';
import { connectNode, connectService, enrollAndConnect, startAuthServer, type NodeConn } from '../testing/auth-server.js';
import { mintNodeCredentials } from '../credentials/mint.js';
import { readObject, readObjectChunks } from './object-reader.js';

const STREAM = `OBJ_${MODULE_BUCKET}`;
// Large enough that JetStream asks the reader for flow-control replies.
const MODULE = new Uint8Array(8 * 1024 * 1024).map((_, i) => (i * 31) % 251);

let server: Awaited<ReturnType<typeof startAuthServer>>;
let svc: NatsConnection;
let store: ObjectStore;
let a: NodeConn;

beforeAll(async () => {
  server = await startAuthServer();
  svc = await connectService(server.nats.url, server.authority);
  store = await new Objm(svc).create(MODULE_BUCKET);
  await store.putBlob({ name: 'sha256-module' }, MODULE);
  await store.putBlob({ name: 'small' }, new TextEncoder().encode('{"vote":"yes"}'));
  a = await enrollAndConnect(server.nats.url, server.authority, 'node-a', 'web');
});

afterAll(async () => {
  await a?.nc.close();
  await svc?.close();
  await server?.stop();
});

async function streamMessages(): Promise<number> {
  return (await (await jetstreamManager(svc)).streams.info(STREAM)).state.messages;
}

const digest = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('a node and the module store', () => {
  it('reads a module with readObject (message-get only), checked against its SHA-256', async () => {
    const got = await readObject(a.nc, 'sha256-module');
    expect(got.length).toBe(MODULE.length);
    expect(digest(got)).toBe(digest(MODULE));
    expect(a.violations).toEqual([]);
  });

  it('streams a module chunk by chunk with readObjectChunks, each chunk one object-store chunk, checked against its SHA-256', async () => {
    const info = await store.info('sha256-module');
    const hash = createHash('sha256');
    let chunks = 0;
    let largest = 0;
    for await (const chunk of readObjectChunks(a.nc, 'sha256-module')) {
      chunks++;
      largest = Math.max(largest, chunk.length);
      hash.update(chunk);
    }
    expect(chunks).toBe(info!.chunks);
    expect(largest).toBeLessThan(MODULE.length / 8);
    expect(hash.digest('hex')).toBe(digest(MODULE));
    const tooLarge = await (async () => {
      for await (const chunk of readObjectChunks(a.nc, 'sha256-module', { maxBytes: MODULE.length - 1 })) void chunk;
    })().catch((e: unknown) => e);
    expect(isChangeoverError(tooLarge, 'TOO_LARGE')).toBe(true);
  });

  it('gets NOT_FOUND for a module that is not there', async () => {
    const err = await readObject(a.nc, 'missing').catch((e: unknown) => e);
    expect(isChangeoverError(err, 'NOT_FOUND')).toBe(true);
  });

  it('refuses a module whose bytes do not match its recorded SHA-256 with DIGEST_MISMATCH', async () => {
    const info = await store.info('small');
    const js = (await import('@nats-io/jetstream')).jetstream(svc);
    const meta = { name: 'tampered', nuid: info!.nuid, size: info!.size, chunks: info!.chunks, digest: `SHA-256=${createHash('sha256').update('other').digest('base64url')}=` };
    await js.publish(`$O.${MODULE_BUCKET}.M.${Buffer.from('tampered').toString('base64').replace(/\+/g, '-').replace(/\//g, '_')}`, JSON.stringify(meta));
    const err = await readObject(a.nc, 'tampered').catch((e: unknown) => e);
    expect(isChangeoverError(err, 'DIGEST_MISMATCH')).toBe(true);
  });

  it('cannot write: neither through the object store API nor by raw publish or JetStream admin calls', async () => {
    const before = await streamMessages();
    // Objm.create on an existing bucket checks/updates the stream: refused.
    await expect(new Objm(a.nc).create(MODULE_BUCKET)).rejects.toThrow(/Permissions Violation/);
    for (const subject of [`$O.${MODULE_BUCKET}.C.forged`, `$O.${MODULE_BUCKET}.M.${Buffer.from('sha256-module').toString('base64')}`]) {
      a.nc.publish(subject, 'forged');
      await waitFor(`publish violation on ${subject}`, () => a.violations.some((v) => v.operation === 'publish' && v.subject === subject));
    }
    for (const api of [`$JS.API.STREAM.PURGE.${STREAM}`, `$JS.API.STREAM.DELETE.${STREAM}`, `$JS.API.STREAM.MSG.DELETE.${STREAM}`, `$JS.API.STREAM.UPDATE.${STREAM}`]) {
      await expect(a.nc.request(api, '{}', { timeout: 2_000 })).rejects.toThrow(/Permissions Violation/);
    }
    await a.nc.flush();
    expect(await streamMessages()).toBe(before);
    expect(digest(await readObject(svc, 'sha256-module'))).toBe(digest(MODULE));
  });

  it('cannot create a consumer, so it cannot make the server deliver stored messages onto another node subject', async () => {
    const seen: string[] = [];
    const sub = svc.subscribe('changeover.agent.node-b.>', { callback: (_e, m) => void seen.push(m.subject) });
    await svc.flush();
    const body = JSON.stringify({ stream_name: STREAM, config: { name: 'redirect', deliver_subject: 'changeover.agent.node-b.vote', ack_policy: 'none', deliver_policy: 'all' } });
    await expect(a.nc.request(`$JS.API.CONSUMER.CREATE.${STREAM}.redirect`, body, { timeout: 2_000 })).rejects.toThrow(/Permissions Violation/);
    await expect(a.nc.request(`$JS.API.CONSUMER.CREATE.${STREAM}`, body, { timeout: 2_000 })).rejects.toThrow(/Permissions Violation/);
    const consumers = await (await jetstreamManager(svc)).consumers.list(STREAM).next();
    expect(consumers.map((c) => c.name)).not.toContain('redirect');
    expect(seen).toEqual([]);
    sub.unsubscribe();
  });

  describe("in 'consumer' read mode", () => {
    let c: NodeConn;
    beforeAll(async () => {
      c = await connectNode(server.nats.url, await mintNodeCredentials(server.authority, { nodeId: 'node-c', classId: 'web', moduleReads: 'consumer' }));
    });
    afterAll(async () => c?.nc.close());

    it('reads a module with the nats.js object store reader (including flow control) and still cannot write', async () => {
      const os = await new Objm(c.nc).open(MODULE_BUCKET);
      const got = await os.getBlob('sha256-module');
      expect(got && digest(got)).toBe(digest(MODULE));
      expect(c.violations).toEqual([]);
      await expect(os.putBlob({ name: 'forged' }, new Uint8Array(10))).rejects.toThrow(/Permissions Violation/);
      expect(await store.info('forged')).toBeNull();
    });

    it('can aim a consumer at another node subject — the weakness that makes message-get the default', async () => {
      const seen: string[] = [];
      const sub = svc.subscribe('changeover.agent.node-b.vote', { callback: (_e, m) => void seen.push(m.string()) });
      await svc.flush();
      const body = JSON.stringify({ stream_name: STREAM, config: { name: 'redirect', deliver_subject: 'changeover.agent.node-b.vote', filter_subject: `$O.${MODULE_BUCKET}.M.>`, ack_policy: 'none', deliver_policy: 'all' } });
      const reply = await c.nc.request(`$JS.API.CONSUMER.CREATE.${STREAM}.redirect.$O.${MODULE_BUCKET}.M.>`, body, { timeout: 2_000 });
      expect(reply.json<{ error?: unknown }>().error).toBeUndefined();
      await waitFor('stored metadata delivered on node-b.vote', () => seen.length >= 1);
      expect(seen.some((s) => s.includes('"name":"small"'))).toBe(true);
      sub.unsubscribe();
    });
  });
});

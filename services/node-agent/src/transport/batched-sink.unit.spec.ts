import { describe, expect, it } from '@jest/globals';
import type { NatsConnection, PublishOptions } from '@nats-io/transport-node';
import { encode } from '@changeover/contracts';
import { createLog } from '../log.js';
import { batchedNatsSink, encodeReport } from './batched-sink.js';

const inventory = {
  active: [{ name: 'web', version: '2.0.0', modules: [{ name: 'web-bin', version: '2.0.0', digest: `sha256:${'a'.repeat(64)}` }], requires: { db: '^1.0.0' }, provides: ['web-api@2.0.0'], consumes: [] }],
  previous: [],
  digest: `sha256:${'b'.repeat(64)}`,
};

describe('encodeReport', () => {
  it('gives the same bytes as the contracts encode, an inventory reused or not', () => {
    const bodies: unknown[] = [
      { nodeId: 'n-1', rolloutId: 'r1', attempt: 0, phase: 'completed', bytesFetched: 16, modulesFetched: 1, modulesUnchanged: 0, inventory },
      { nodeId: 'n-2', rolloutId: 'r1', attempt: 0, phase: 'completed', bytesFetched: 16, modulesFetched: 1, modulesUnchanged: 0, inventory },
      { nodeId: 'n-1', at: '2026-01-01T00:00:00.000Z', inventory },
      { nodeId: 'n-1', error: undefined, skipped: () => 1, text: 'ünïcødé \u2028 "quoted"', inventory },
      { gone: undefined, inventory },
      { inventory },
      { nodeId: 'n-1', inventory, startedAt: 'later' },
      { nodeId: 'n-1', inventory: null },
      { nodeId: 'n-1', inventory: [1, 2] },
      { 2: 'two', 1: 'one', inventory },
      { nodeId: 'n-1', decision: 'accept', verdicts: [{ processId: 'sim-app', decision: 'accept' }] },
      [1, 'two', { inventory }],
      'text',
      42,
    ];
    for (const body of bodies) expect(Buffer.from(encodeReport(body)).toString('utf8')).toBe(Buffer.from(encode(body)).toString('utf8'));
  });

  it('refuses what JSON cannot carry, as encode does', () => {
    expect(() => encodeReport({ n: 1n, inventory })).toThrow(/cannot encode/);
    expect(() => encodeReport(undefined)).toThrow(/cannot encode/);
  });
});

describe('batchedNatsSink', () => {
  const recorder = () => {
    const sent: { subject: string; text: string; headers: boolean }[] = [];
    const nc = { publish: (subject: string, data: Uint8Array, opts?: PublishOptions) => void sent.push({ subject, text: Buffer.from(data).toString('utf8'), headers: !!opts?.headers }) } as unknown as NatsConnection;
    return { sent, nc };
  };

  it('holds reports until the event loop turns, then publishes them in order', async () => {
    const { sent, nc } = recorder();
    const sink = batchedNatsSink(nc, createLog('silent'));
    sink.publish('n-1', 'vote', { nodeId: 'n-1', n: 1 });
    sink.publish('n-2', 'progress', { nodeId: 'n-2', n: 2 });
    expect(sent).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(sent.map((s) => [s.subject, s.text])).toEqual([
      ['changeover.agent.n-1.vote', '{"nodeId":"n-1","n":1}'],
      ['changeover.agent.n-2.progress', '{"nodeId":"n-2","n":2}'],
    ]);
    expect(sent.every((s) => !s.headers)).toBe(true);
  });

  it('publishes at once when 64 KiB are held, and everything on flush', () => {
    const { sent, nc } = recorder();
    const sink = batchedNatsSink(nc, createLog('silent'));
    const big = 'x'.repeat(1024);
    for (let i = 0; i < 70; i++) sink.publish(`n-${i}`, 'vote', { nodeId: `n-${i}`, big });
    expect(sent.length).toBeGreaterThanOrEqual(60);
    expect(sent.length).toBeLessThan(70);
    sink.flush();
    expect(sent.map((s) => s.subject)).toEqual(Array.from({ length: 70 }, (_, i) => `changeover.agent.n-${i}.vote`));
  });

  it('drops (and logs) a report the connection refuses, and goes on with the rest', () => {
    const sent: string[] = [];
    const warned: string[] = [];
    const nc = { publish: (subject: string) => { if (subject.includes('n-1.')) throw new Error('closed'); sent.push(subject); } } as unknown as NatsConnection;
    const sink = batchedNatsSink(nc, { info: () => undefined, error: () => undefined, warn: (msg) => void warned.push(msg) });
    sink.publish('n-1', 'vote', {});
    sink.publish('n-2', 'vote', {});
    sink.flush();
    expect(sent).toEqual(['changeover.agent.n-2.vote']);
    expect(warned).toEqual(['report not sent']);
  });
});

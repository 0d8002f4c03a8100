import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { encode, isChangeoverError } from '@changeover/contracts';
import { startNats, waitFor, type TestNats } from '@changeover/test-kit';
import { registry } from '@changeover/telemetry';
import { DEFAULT_MAX_MESSAGE_BYTES, RateLimiter, requestRpc, serveRpc, subscribeValidated } from './index.js';

// Message size limits and rate limits, at and over each limit, on a real nats-server.

const Blob = z.strictObject({ pad: z.string() });
let server: TestNats;
let nc: NatsConnection;

beforeAll(async () => {
  server = await startNats();
  nc = await connect({ servers: server.url });
});

afterAll(async () => {
  await nc?.close();
  await server?.stop();
});

/** A JSON message of exactly `size` bytes. */
const sized = (size: number) => encode({ pad: 'x'.repeat(size - encode({ pad: '' }).length) });

async function rejected(code: string): Promise<number> {
  const metric = await registry.getSingleMetric('changeover_rejected_messages_total')!.get();
  return metric.values.filter((v) => v.labels['code'] === code).reduce((a, v) => a + v.value, 0);
}

describe('message size limits', () => {
  it('should take a message at maxBytes and reject one byte over with TOO_LARGE, counted', async () => {
    const seen: number[] = [];
    const invalid: string[] = [];
    const before = await rejected('TOO_LARGE');
    const sub = subscribeValidated(nc, 'changeover.agent.size-1.report', Blob, (m) => void seen.push(m.pad.length), { maxBytes: 2048, onInvalid: (e) => invalid.push(e.code) });
    try {
      nc.publish('changeover.agent.size-1.report', sized(2048));
      nc.publish('changeover.agent.size-1.report', sized(2049));
      await waitFor('both messages handled', () => seen.length + invalid.length === 2);
      expect(seen).toHaveLength(1);
      expect(invalid).toEqual(['TOO_LARGE']);
      expect(sub.rejections.get('TOO_LARGE')).toBe(1);
      expect(await rejected('TOO_LARGE')).toBe(before + 1);
    } finally {
      await sub.stop();
    }
  });

  it('should bound every subscription by 1 MiB unless told otherwise', () => {
    expect(DEFAULT_MAX_MESSAGE_BYTES).toBe(1024 * 1024);
    expect(() => subscribeValidated(nc, 'changeover.agent.x.report', Blob, () => undefined, { maxBytes: 0 })).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED' }));
  });

  it('should answer a request at maxRequestBytes and refuse one over with TOO_LARGE', async () => {
    const rpc = serveRpc(nc, 'changeover.limits.echo', Blob, (r) => ({ length: r.pad.length }), { maxRequestBytes: 2048 });
    try {
      const at = await requestRpc(nc, 'changeover.limits.echo', JSON.parse(new TextDecoder().decode(sized(2048))), z.object({ length: z.number() }), { timeoutMs: 5000 });
      expect(at.length).toBe(2048 - encode({ pad: '' }).length);
      const over = await requestRpc(nc, 'changeover.limits.echo', JSON.parse(new TextDecoder().decode(sized(2049))), z.unknown(), { timeoutMs: 5000 }).catch((e: unknown) => e);
      expect(isChangeoverError(over) && over.code).toBe('TOO_LARGE');
      expect(rpc.rejections.get('TOO_LARGE')).toBe(1);
    } finally {
      await rpc.stop();
    }
  });
});

describe('rate limits', () => {
  it('should refill a bucket at the configured rate, per key', () => {
    const l = new RateLimiter({ perSecond: 2, burst: 3 });
    expect([l.take('a', 0), l.take('a', 0), l.take('a', 0), l.take('a', 0)]).toEqual([true, true, true, false]);
    expect(l.take('b', 0)).toBe(true);
    // Half a second at 2/s is one token.
    expect([l.take('a', 500), l.take('a', 500)]).toEqual([true, false]);
    expect(() => l.check('a', 'hello', 500)).toThrow(expect.objectContaining({ code: 'RATE_LIMITED' }));
    expect(() => new RateLimiter({ perSecond: 0, burst: 1 })).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED' }));
  });

  it('should forget the least recently seen key past maxKeys', () => {
    const l = new RateLimiter({ perSecond: 1, burst: 1, maxKeys: 2 });
    expect(l.take('a', 0)).toBe(true);
    expect(l.take('b', 0)).toBe(true);
    expect(l.take('c', 0)).toBe(true);
    // 'a' was forgotten: a full bucket again.
    expect(l.take('a', 0)).toBe(true);
    expect(l.take('c', 0)).toBe(false);
  });

  it('should answer requests past the burst with RATE_LIMITED, counted', async () => {
    const before = await rejected('RATE_LIMITED');
    const rpc = serveRpc(nc, 'changeover.limits.enroll', Blob, () => ({ ok: 1 }), { rateLimit: { perSecond: 0.001, burst: 3 } });
    try {
      const answers = [];
      for (let i = 0; i < 5; i++) answers.push(await requestRpc(nc, 'changeover.limits.enroll', { pad: '' }, z.unknown(), { timeoutMs: 5000 }).then(() => 'ok', (e: unknown) => (isChangeoverError(e) ? e.code : 'untyped')));
      expect(answers).toEqual(['ok', 'ok', 'ok', 'RATE_LIMITED', 'RATE_LIMITED']);
      expect(rpc.rejections.get('RATE_LIMITED')).toBe(2);
      expect(await rejected('RATE_LIMITED')).toBe(before + 2);
    } finally {
      await rpc.stop();
    }
  });

  it('should drop messages of one key past its burst and keep other keys flowing', async () => {
    const seen: string[] = [];
    const sub = subscribeValidated(nc, 'changeover.agent.*.hello', Blob, (_m, ctx) => void seen.push(ctx.subject.split('.')[2]!), { rateLimit: { perSecond: 0.001, burst: 2, key: (s) => s.split('.')[2]! } });
    try {
      for (let i = 0; i < 4; i++) nc.publish('changeover.agent.noisy.hello', encode({ pad: '' }));
      nc.publish('changeover.agent.quiet.hello', encode({ pad: '' }));
      await waitFor('every message handled', () => seen.length + sub.rejections.get('RATE_LIMITED') === 5);
      expect(seen.sort()).toEqual(['noisy', 'noisy', 'quiet']);
      expect(sub.rejections.get('RATE_LIMITED')).toBe(2);
    } finally {
      await sub.stop();
    }
  });
});

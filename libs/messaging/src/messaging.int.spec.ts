import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { ChangeoverError, encode, isChangeoverError } from '@changeover/contracts';
import { startNats, waitFor, type TestNats } from '@changeover/test-kit';
import { createLogger, currentTraceIds, installTestTracing, registry, withSpan, type TestTracing } from '@changeover/telemetry';
import { publish, requestRpc, serveRpc, subscribeValidated } from './index.js';

const Greet = z.strictObject({ name: z.string().min(1).max(32), times: z.number().int().positive().default(1) });
const Greeting = z.strictObject({ text: z.string(), traceId: z.string().nullable() });
const Report = z.strictObject({ nodeId: z.string(), load: z.number() });

let server: TestNats;
let nc: NatsConnection;
let tracing: TestTracing;

beforeAll(async () => {
  tracing = installTestTracing();
  server = await startNats();
  nc = await connect({ servers: server.url });
});

afterAll(async () => {
  await nc?.close();
  await server?.stop();
  await tracing?.shutdown();
});

async function rejectedCount(kind: string, code: string): Promise<number> {
  const metric = await registry.getSingleMetric('changeover_rejected_messages_total')!.get();
  return metric.values.find((v) => v.labels['subject_kind'] === kind && v.labels['code'] === code)?.value ?? 0;
}

describe('request/reply', () => {
  it('round-trips a validated request and result, continuing the caller trace', async () => {
    const rpc = serveRpc(nc, 'changeover.registry.greet', Greet, (req) => ({ text: `hello ${req.name} x${req.times}`, traceId: currentTraceIds()?.traceId ?? null }));
    try {
      expect(rpc.queue).toBe('registry');
      const { result, callerTrace } = await withSpan('caller', async () => ({
        result: await requestRpc(nc, 'changeover.registry.greet', { name: 'ada' }, Greeting, { timeoutMs: 5_000 }),
        callerTrace: currentTraceIds()!.traceId,
      }));
      expect(result.text).toBe('hello ada x1');
      expect(result.traceId).toBe(callerTrace);
      const serverSpan = tracing.spans().find((s) => s.name === 'rpc changeover.registry.greet')!;
      expect(serverSpan.spanContext().traceId).toBe(callerTrace);
    } finally {
      await rpc.stop();
    }
  });

  it('delivers a typed error from the handler as the same ChangeoverError', async () => {
    const rpc = serveRpc(nc, 'changeover.registry.find', Greet, (req) => {
      throw new ChangeoverError('NOT_FOUND', `no package ${req.name}`, { name: req.name });
    });
    try {
      const err = await requestRpc(nc, 'changeover.registry.find', { name: 'nope' }, Greeting, { timeoutMs: 5_000 }).catch((e: unknown) => e);
      expect(isChangeoverError(err, 'NOT_FOUND')).toBe(true);
      expect((err as ChangeoverError).message).toBe('no package nope');
      expect((err as ChangeoverError).details).toEqual({ name: 'nope' });
    } finally {
      await rpc.stop();
    }
  });

  it('answers an unexpected handler failure INTERNAL without leaking its message', async () => {
    const rpc = serveRpc(nc, 'changeover.registry.crash', Greet, () => {
      throw new Error('secret database password in stack');
    }, { logger: silentLogger() });
    try {
      const err = await requestRpc(nc, 'changeover.registry.crash', { name: 'a' }, Greeting, { timeoutMs: 5_000 }).catch((e: unknown) => e);
      expect(isChangeoverError(err, 'INTERNAL')).toBe(true);
      expect((err as Error).message).not.toMatch(/secret/);
    } finally {
      await rpc.stop();
    }
  });

  it('rejects a malformed request with VALIDATION_FAILED naming the field, counts it and keeps serving', async () => {
    const rpc = serveRpc(nc, 'changeover.rollout.greet', Greet, (req) => ({ text: req.name, traceId: null }));
    try {
      const before = await rejectedCount('rollout', 'VALIDATION_FAILED');
      const err = await requestRpc(nc, 'changeover.rollout.greet', { name: 42 }, Greeting, { timeoutMs: 5_000 }).catch((e: unknown) => e);
      expect(isChangeoverError(err, 'VALIDATION_FAILED')).toBe(true);
      expect((err as Error).message).toMatch(/name/);
      const extra = await requestRpc(nc, 'changeover.rollout.greet', { name: 'a', admin: true }, Greeting, { timeoutMs: 5_000 }).catch((e: unknown) => e);
      expect((extra as Error).message).toMatch(/admin/);
      // Not JSON at all.
      const raw = await nc.request('changeover.rollout.greet', new TextEncoder().encode('{oops'), { timeout: 5_000 });
      expect(JSON.parse(new TextDecoder().decode(raw.data))).toMatchObject({ ok: false, error: { code: 'VALIDATION_FAILED' } });
      expect(rpc.rejections.get('VALIDATION_FAILED')).toBe(3);
      expect(await rejectedCount('rollout', 'VALIDATION_FAILED')).toBe(before + 3);
      expect(await requestRpc(nc, 'changeover.rollout.greet', { name: 'still-up' }, Greeting, { timeoutMs: 5_000 })).toEqual({ text: 'still-up', traceId: null });
    } finally {
      await rpc.stop();
    }
  });

  it('rejects a result that does not match its schema with VALIDATION_FAILED naming the field', async () => {
    const rpc = serveRpc(nc, 'changeover.registry.bad-result', Greet, () => ({ text: 7 }));
    try {
      const err = await requestRpc(nc, 'changeover.registry.bad-result', { name: 'a' }, Greeting, { timeoutMs: 5_000 }).catch((e: unknown) => e);
      expect(isChangeoverError(err, 'VALIDATION_FAILED')).toBe(true);
      expect((err as Error).message).toMatch(/text/);
    } finally {
      await rpc.stop();
    }
  });

  it('maps a silent responder to TIMEOUT and no responder to UNAVAILABLE', async () => {
    const sub = nc.subscribe('changeover.registry.silent', { callback: () => undefined });
    try {
      const slow = await requestRpc(nc, 'changeover.registry.silent', { name: 'a' }, Greeting, { timeoutMs: 200 }).catch((e: unknown) => e);
      expect(isChangeoverError(slow, 'TIMEOUT')).toBe(true);
    } finally {
      sub.unsubscribe();
    }
    const none = await requestRpc(nc, 'changeover.registry.nobody', { name: 'a' }, Greeting, { timeoutMs: 2_000 }).catch((e: unknown) => e);
    expect(isChangeoverError(none, 'UNAVAILABLE')).toBe(true);
  });

  it('answers result null for a handler that returns nothing', async () => {
    let seen = '';
    const rpc = serveRpc(nc, 'changeover.registry.touch', Greet, (req) => void (seen = req.name));
    try {
      expect(await requestRpc(nc, 'changeover.registry.touch', { name: 'x' }, z.null(), { timeoutMs: 5_000 })).toBeNull();
      expect(seen).toBe('x');
    } finally {
      await rpc.stop();
    }
  });

  it('shares a service subject across instances in a queue group', async () => {
    const seen: string[] = [];
    const a = serveRpc(nc, 'changeover.registry.shared', Greet, (r) => (seen.push(`a:${r.name}`), { text: 'a', traceId: null }));
    const b = serveRpc(nc, 'changeover.registry.shared', Greet, (r) => (seen.push(`b:${r.name}`), { text: 'b', traceId: null }));
    try {
      for (let i = 0; i < 20; i++) await requestRpc(nc, 'changeover.registry.shared', { name: `r${i}` }, Greeting, { timeoutMs: 5_000 });
      expect(seen).toHaveLength(20); // each request handled once
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it('refuses bad arguments with typed errors', async () => {
    await expect(requestRpc(nc, 'changeover..x', {}, Greeting, { timeoutMs: 100 })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(requestRpc(nc, 'changeover.registry.x', {}, Greeting, { timeoutMs: -1 })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(requestRpc({} as NatsConnection, 'changeover.registry.x', {}, Greeting, { timeoutMs: 100 })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(() => serveRpc(nc, 'changeover.registry.x', {} as z.ZodType, () => 1)).toThrow(ChangeoverError);
    expect(() => serveRpc(nc, 'a b', Greet, () => 1)).toThrow(/invalid token/);
    expect(() => publish(nc, 'changeover.agent.*.vote', {})).toThrow(ChangeoverError);
  });
});

describe('fire-and-forget', () => {
  it('delivers valid messages with their trace, rejects and counts invalid ones, survives handler errors', async () => {
    const got: { nodeId: string; traceId?: string }[] = [];
    const invalid: string[] = [];
    const sub = subscribeValidated(
      nc,
      'changeover.agent.*.heartbeat',
      Report,
      (m) => {
        if (m.nodeId === 'boom') throw new Error('handler bug');
        got.push({ nodeId: m.nodeId, traceId: currentTraceIds()?.traceId });
      },
      { onInvalid: (e) => invalid.push(e.message), logger: silentLogger() },
    );
    try {
      const before = await rejectedCount('agent', 'VALIDATION_FAILED');
      const traceId = await withSpan('sender', async () => {
        publish(nc, 'changeover.agent.n1.heartbeat', { nodeId: 'n1', load: 0.5 }, { schema: Report });
        return currentTraceIds()!.traceId;
      });
      nc.publish('changeover.agent.n2.heartbeat', encode({ nodeId: 'n2', load: 'high' }));
      nc.publish('changeover.agent.n3.heartbeat', new TextEncoder().encode('not json'));
      publish(nc, 'changeover.agent.n4.heartbeat', { nodeId: 'boom', load: 1 });
      publish(nc, 'changeover.agent.n5.heartbeat', { nodeId: 'n5', load: 1 }, { headers: headers() });
      await waitFor('messages handled', () => got.length === 2 && invalid.length === 2 && sub.failures === 1, { timeoutMs: 10_000 });
      expect(got[0]).toEqual({ nodeId: 'n1', traceId });
      expect(got[1]!.nodeId).toBe('n5');
      expect(invalid[0]).toMatch(/load/);
      expect(invalid[1]).toMatch(/not JSON/);
      expect(sub.rejections.get()).toBe(2);
      expect(await rejectedCount('agent', 'VALIDATION_FAILED')).toBe(before + 2);
    } finally {
      await sub.stop();
    }
  });

  it('counts a bad message once when a secondary subscription (a queue group) hears the same subject', async () => {
    const primary = subscribeValidated(nc, 'changeover.agent.*.vote', Report, () => undefined, { logger: silentLogger() });
    const invalid: string[] = [];
    const secondary = subscribeValidated(nc, 'changeover.agent.*.vote', Report, () => undefined, { queue: 'q-secondary', secondary: true, onInvalid: (e) => invalid.push(e.code), logger: silentLogger() });
    try {
      const before = await rejectedCount('agent', 'VALIDATION_FAILED');
      nc.publish('changeover.agent.n1.vote', new TextEncoder().encode('not json'));
      await waitFor('both subscriptions refused it', () => primary.rejections.get() === 1 && invalid.length === 1, { timeoutMs: 10_000 });
      expect(invalid).toEqual(['VALIDATION_FAILED']);
      expect(secondary.rejections.get()).toBe(0);
      expect(await rejectedCount('agent', 'VALIDATION_FAILED')).toBe(before + 1);
    } finally {
      await Promise.all([primary.stop(), secondary.stop()]);
    }
  });

  it('counts an asynchronous handler that rejects, and stop() waits for the handlers still running', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const finished: string[] = [];
    const sub = subscribeValidated(
      nc,
      'changeover.agent.*.heartbeat',
      Report,
      async (m) => {
        if (m.nodeId === 'boom') throw new Error('async handler bug');
        await gate;
        finished.push(m.nodeId);
      },
      { logger: silentLogger() },
    );
    publish(nc, 'changeover.agent.a1.heartbeat', { nodeId: 'boom', load: 1 });
    publish(nc, 'changeover.agent.a2.heartbeat', { nodeId: 'slow', load: 1 });
    await waitFor('async failure counted', () => sub.failures === 1, { timeoutMs: 10_000 });
    // The slow handler holds its message: stop() must not return before it is done.
    await sub.subscription.drain();
    let stopped = false;
    const stopping = sub.stop().then(() => void (stopped = true));
    // A turn of the event loop runs every promise stop() could settle by itself; only release() may end it.
    await new Promise((r) => setImmediate(r));
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect(finished).toEqual(['slow']);
    expect(sub.failures).toBe(1);
  });

  it('refuses to publish a body its schema rejects', () => {
    expect(() => publish(nc, 'changeover.agent.n1.heartbeat', { nodeId: 'n1' }, { schema: Report })).toThrow(/load/);
  });
});

// Expected error logs stay out of the test output.
const silentLogger = () => createLogger('messaging-test', { level: 'silent' });

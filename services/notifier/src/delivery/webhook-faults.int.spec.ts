import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestDatabase, startNats, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import type { DeliveryDetail, Delivery, Subscription } from '@changeover/contracts';
import { startNotifier, type RunningNotifier } from '../notifier.js';
import { restClient, TEST_AUTH_ENV, TEST_LOG_LEVEL } from '../testing/api.js';
import { eventPublisher, sample, type EventPublisher } from '../testing/events.js';
import { startHttpReceiver, type HttpReceiver } from '../testing/receivers.js';

let db: TestDatabase;
let nats: TestNats;
let events: EventPublisher;
let http: HttpReceiver;
let notifier: RunningNotifier;
let api: ReturnType<typeof restClient>;

const MAX_ATTEMPTS = 3;
/**
 * Long enough that a loaded machine answers the endpoints that do answer within it (an attempt that
 * times out has no status code), short enough that the hanging endpoint's three attempts end quickly.
 */
const HTTP_TIMEOUT_MS = 2_000;
const config = () => ({
  DATABASE_URL: db.url,
  NATS_URL: nats.url,
  NOTIFIER_HTTP_PORT: '0',
  NOTIFIER_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
  NOTIFIER_BACKOFF_BASE_MS: '5',
  NOTIFIER_BACKOFF_MAX_MS: '40',
  NOTIFIER_HTTP_TIMEOUT_MS: String(HTTP_TIMEOUT_MS),
  NOTIFIER_POLL_INTERVAL_MS: '20',
  NOTIFIER_DEFAULT_SUBSCRIPTIONS: JSON.stringify({ name: 'ops-slack', channel: { type: 'slack', url: http.url('/default-slack') } }),
  LOG_LEVEL: TEST_LOG_LEVEL,
  ...TEST_AUTH_ENV,
});

beforeAll(async () => {
  [db, nats, http] = await Promise.all([createTestDatabase('notifier_faults'), startNats(), startHttpReceiver()]);
  events = await eventPublisher(nats.url);
  notifier = await startNotifier(config());
  api = restClient(notifier.httpPort);
}, 60_000);

afterAll(async () => {
  await notifier?.close();
  await events?.close();
  await Promise.all([http?.close(), nats?.stop()]);
  await db?.drop();
}, 60_000);

async function hook(path: string): Promise<Subscription> {
  const res = await api<Subscription>('POST', '/subscriptions', { name: path, channel: { type: 'webhook', url: http.url(path) } });
  expect(res.status).toBe(201);
  return res.body;
}

/** Waits until the subscription's only delivery is final, and returns it with its attempts. */
async function finalDelivery(sub: Subscription): Promise<DeliveryDetail> {
  const d = await waitFor(`final delivery for ${sub.name}`, async () => {
    const [one] = (await api<Delivery[]>('GET', `/deliveries?subscriptionId=${sub.id}`)).body;
    return one && one.status !== 'pending' ? one : null;
  });
  return (await api<DeliveryDetail>('GET', `/deliveries/${d.id}`)).body;
}

describe('webhook faults', () => {
  it('retries with backoff and dead-letters after the last attempt, recording each; a slow endpoint blocks no one', async () => {
    http.behave('/hang', { hang: true });
    http.behave('/error', { status: 500 });
    http.behave('/close', { destroy: true });
    http.behave('/slow', { delayMs: 150 });
    http.behave('/flaky', (n) => (n < 3 ? { status: 503 } : { status: 204 }));
    http.behave('/gone', { status: 410 });
    const subs = { hang: await hook('/hang'), error: await hook('/error'), close: await hook('/close'), slow: await hook('/slow'), flaky: await hook('/flaky'), gone: await hook('/gone'), fast: await hook('/fast') };

    const ce = events.cloudEvent('rollout.blocked', sample.blocked('r-faults'));
    await events.publish(ce);

    // The fast endpoint is served while the hanging one holds its connection.
    await waitFor('fast delivery', () => http.at('/fast').length === 1);
    expect(http.at('/hang').length).toBeLessThan(MAX_ATTEMPTS);

    const hang = await finalDelivery(subs.hang);
    expect(hang).toMatchObject({ status: 'dead', attemptCount: MAX_ATTEMPTS, lastStatusCode: null });
    expect(hang.attempts.map((a) => a.error)).toEqual(Array(MAX_ATTEMPTS).fill(`timed out after ${HTTP_TIMEOUT_MS} ms`));

    const error = await finalDelivery(subs.error);
    expect(error).toMatchObject({ status: 'dead', attemptCount: MAX_ATTEMPTS, lastStatusCode: 500 });
    expect(error.attempts.map((a) => a.statusCode)).toEqual([500, 500, 500]);

    const close = await finalDelivery(subs.close);
    expect(close).toMatchObject({ status: 'dead', attemptCount: MAX_ATTEMPTS, lastStatusCode: null });
    expect(close.attempts.every((a) => a.outcome === 'failure' && /fetch failed|socket|ECONNRESET/i.test(a.error ?? ''))).toBe(true);

    const slow = await finalDelivery(subs.slow);
    expect(slow).toMatchObject({ status: 'delivered', attemptCount: 1, lastStatusCode: 200 });
    expect(slow.attempts[0]!.latencyMs).toBeGreaterThanOrEqual(140);

    const flaky = await finalDelivery(subs.flaky);
    expect(flaky).toMatchObject({ status: 'delivered', attemptCount: 3, lastStatusCode: 204 });
    expect(flaky.attempts.map((a) => [a.outcome, a.statusCode])).toEqual([['failure', 503], ['failure', 503], ['success', 204]]);
    // Every attempt carried the same event id, so the receiver can de-duplicate.
    expect(new Set(http.at('/flaky').map((r) => r.headers['ce-id']))).toEqual(new Set([ce.id]));

    // A 4xx other than 408/429 is the endpoint refusing the request: no point retrying.
    const gone = await finalDelivery(subs.gone);
    expect(gone).toMatchObject({ status: 'dead', attemptCount: 1, lastStatusCode: 410 });

    const metrics = (await api('GET', '/metrics')).text;
    expect(metrics).toContain('changeover_deliveries_total{channel="webhook",outcome="dead"} 4');
    expect(metrics).toMatch(/changeover_deliveries_total\{channel="webhook",outcome="retry"\} (8|9|\d\d)/);
  });

  it('redelivers a dead-lettered delivery with a fresh attempt budget', async () => {
    http.behave('/later', (n) => (n <= MAX_ATTEMPTS ? { status: 500 } : { status: 200 }));
    const sub = await hook('/later');
    await events.publish(events.cloudEvent('rollout.paused', sample.paused('r-later')));
    const dead = await finalDelivery(sub);
    expect(dead.status).toBe('dead');
    expect((await api('POST', `/deliveries/${dead.id}/redeliver`)).status).toBe(202);
    const done = await waitFor('redelivered', async () => {
      const d = (await api<DeliveryDetail>('GET', `/deliveries/${dead.id}`)).body;
      return d.status === 'delivered' ? d : null;
    });
    expect(done.attempts.map((a) => a.outcome)).toEqual(['failure', 'failure', 'failure', 'success']);
  });

  it('creates default subscriptions from configuration once, across restarts', async () => {
    const defaults = async () => (await api<Subscription[]>('GET', '/subscriptions')).body.filter((s) => s.name === 'ops-slack');
    expect(await defaults()).toHaveLength(1);
    await notifier.close();
    notifier = await startNotifier(config());
    api = restClient(notifier.httpPort);
    expect(await defaults()).toHaveLength(1);
    await events.publish(events.cloudEvent('rollout.completed', sample.completed('r-default')));
    await waitFor('default Slack message', () => http.at('/default-slack').some((r) => r.body.includes('Rollout r-default completed')));
  }, 60_000);
});

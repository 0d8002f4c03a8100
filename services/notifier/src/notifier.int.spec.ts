import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestDatabase, startNats, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import type { CloudEvent, Delivery, DeliveryDetail, ErrorBody, Subscription } from '@changeover/contracts';
import { verifyWebhook } from './channels/webhook.signature.js';
import { startNotifier, type RunningNotifier } from './notifier.js';
import { restClient, TEST_AUTH_ENV, TEST_LOG_LEVEL } from './testing/api.js';
import { eventPublisher, sample, type EventPublisher } from './testing/events.js';
import { startHttpReceiver, startSmtpReceiver, type HttpReceiver } from './testing/receivers.js';

let db: TestDatabase;
let nats: TestNats;
let events: EventPublisher;
let http: HttpReceiver;
let smtp: Awaited<ReturnType<typeof startSmtpReceiver>>;
let notifier: RunningNotifier;
let api: ReturnType<typeof restClient>;

const SECRET = 'sixteen-or-more-secret';

beforeAll(async () => {
  [db, nats, http, smtp] = await Promise.all([createTestDatabase('notifier'), startNats(), startHttpReceiver(), startSmtpReceiver()]);
  events = await eventPublisher(nats.url);
  notifier = await startNotifier({
    DATABASE_URL: db.url,
    NATS_URL: nats.url,
    NOTIFIER_HTTP_PORT: '0',
    NOTIFIER_BACKOFF_BASE_MS: '5',
    NOTIFIER_BACKOFF_MAX_MS: '50',
    NOTIFIER_POLL_INTERVAL_MS: '20',
    SMTP_URL: smtp.url,
    SMTP_FROM: 'changeover@example.com',
    LOG_LEVEL: TEST_LOG_LEVEL,
    ...TEST_AUTH_ENV,
  });
  api = restClient(notifier.httpPort);
}, 60_000);

afterAll(async () => {
  await notifier?.close();
  await events?.close();
  await Promise.all([http?.close(), smtp?.close(), nats?.stop()]);
  await db?.drop();
}, 60_000);

async function subscribe(body: unknown): Promise<Subscription> {
  const res = await api<Subscription>('POST', '/subscriptions', body);
  expect(res.status).toBe(201);
  return res.body;
}

/** Publishes and waits until the catch-all webhook got it: the consumer has matched it for every subscription. */
async function publishAndSettle(ce: CloudEvent) {
  await events.publish(ce);
  await waitFor(`event ${ce.id} at the catch-all`, () => http.at('/all').some((r) => r.headers['ce-id'] === ce.id));
}

describe('notifier', () => {
  beforeAll(async () => {
    await subscribe({ name: 'catch-all', channel: { type: 'webhook', url: http.url('/all') }, filter: { eventTypes: ['*'] } });
  });

  it('refuses an invalid subscription with a 400 naming the field, and writes nothing', async () => {
    const before = (await api<Subscription[]>('GET', '/subscriptions')).body.length;
    const badUrl = await api<ErrorBody>('POST', '/subscriptions', { name: 'x', channel: { type: 'webhook', url: 'not a url' } });
    expect(badUrl.status).toBe(400);
    expect(badUrl.body.code).toBe('VALIDATION_FAILED');
    expect(badUrl.body.message).toContain('channel.url');
    const badType = await api<ErrorBody>('POST', '/subscriptions', { name: 'x', channel: { type: 'slack', url: http.url('/s') }, filter: { eventTypes: ['rollout.exploded'] } });
    expect(badType.status).toBe(400);
    expect(badType.body.message).toContain('filter.eventTypes.0: unknown event type');
    const notJson = await api<ErrorBody>('POST', '/subscriptions', '{"name":');
    expect(notJson.status).toBe(400);
    expect(notJson.body.code).toBe('VALIDATION_FAILED');
    const unknown = await api<ErrorBody>('GET', '/subscriptions/7b0e3f8e-3b0a-4d55-9d8e-2f7f6b1f0c11');
    expect(unknown.status).toBe(404);
    expect(unknown.body.code).toBe('NOT_FOUND');
    expect((await api<Subscription[]>('GET', '/subscriptions')).body.length).toBe(before);
    expect(await (await fetch(`http://127.0.0.1:${notifier.httpPort}/metrics`)).text()).toMatch(/changeover_notifier_request_errors_total\{code="VALIDATION_FAILED"\} [3-9]/);
  });

  it('posts the CloudEvent to a webhook, signed so the receiver can verify it, and only events it subscribed to', async () => {
    const sub = await subscribe({ name: 'hook', channel: { type: 'webhook', url: http.url('/hook'), secret: SECRET } });
    expect(sub.channel).toEqual({ type: 'webhook', url: http.url('/hook'), secret: SECRET });
    expect((await api<Subscription>('GET', `/subscriptions/${sub.id}`)).body.channel).toEqual({ type: 'webhook', url: http.url('/hook') });

    await publishAndSettle(events.cloudEvent('rollout.node-progressed', sample.progressed()));
    const blocked = events.cloudEvent('rollout.blocked', sample.blocked());
    await events.publish(blocked);
    const got = await waitFor('webhook delivery', () => http.at('/hook')[0]);
    expect(got.headers['ce-id']).toBe(blocked.id);
    expect(got.headers['ce-type']).toBe('io.changeover.rollout.blocked');
    expect(got.headers['content-type']).toContain('application/cloudevents+json');
    const ts = String(got.headers['x-changeover-timestamp']);
    expect(verifyWebhook(SECRET, ts, got.body, String(got.headers['x-changeover-signature']))).toBe(true);
    expect(verifyWebhook(SECRET, ts, got.body.replace('node-7', 'node-8'), String(got.headers['x-changeover-signature']))).toBe(false);
    expect(JSON.parse(got.body)).toEqual(blocked);
    // node-progressed is not notified by default: nothing was recorded for it.
    const log = await api<Delivery[]>('GET', `/deliveries?subscriptionId=${sub.id}`);
    expect(log.body.map((d) => d.eventType)).toEqual(['rollout.blocked']);
  });

  it('sends every default notification to Slack as a readable message', async () => {
    await subscribe({ name: 'slack', channel: { type: 'slack', url: http.url('/slack') } });
    const all = [
      events.cloudEvent('rollout.blocked', sample.blocked('r-9')),
      events.cloudEvent('rollout.dependency-discrepancy', sample.discrepancy('r-9')),
      events.cloudEvent('rollout.paused', sample.paused('r-9')),
      events.cloudEvent('rollout.failed', sample.failed('r-9')),
      events.cloudEvent('rollout.completed', sample.completed('r-10')),
      events.cloudEvent('cluster-version.adjust-refused', sample.refused(), 'cluster'),
      events.cloudEvent('cluster-version.adjusted', sample.adjusted(), 'cluster'),
    ];
    for (const ce of all) await events.publish(ce);
    await waitFor('seven Slack messages', () => http.at('/slack').length === all.length);
    const texts = http.at('/slack').map((r) => JSON.parse(r.body) as { text: string; blocks: unknown[] });
    const all_ = texts.map((t) => `${t.text}\n${JSON.stringify(t.blocks)}`).join('\n');
    expect(all_).toContain('Rollout r-9 is blocked: 1 veto on 1 node');
    expect(all_).toContain('node node-7: process billing-worker (module billing) vetoed with PROCESS_BUSY: closing the month (retry after 60s)');
    expect(all_).toContain('changeover rollout force r-9 --reason');
    expect(all_).toContain('package billing needs API auth-api@^2');
    expect(all_).toContain('Rollout r-9 paused by its error threshold');
    expect(all_).toContain('Rollout r-9 failed');
    expect(all_).toContain('Rollout r-10 completed');
    expect(all_).toContain('group orders: GROUP_PARTITIONED');
    expect(all_).toContain('Cluster version adjusted to 3');
  });

  it('sends e-mail over SMTP', async () => {
    await subscribe({ name: 'mail', channel: { type: 'email', to: ['ops@example.com'] }, filter: { eventTypes: ['rollout.blocked'] } });
    const ce = events.cloudEvent('rollout.blocked', sample.blocked('r-mail'));
    await events.publish(ce);
    const mail = await waitFor('an e-mail', () => smtp.mails.find((m) => m.raw.includes(ce.id)));
    expect(mail.to).toEqual(['ops@example.com']);
    expect(mail.from).toBe('changeover@example.com');
    expect(mail.raw).toContain('Subject: [changeover] Rollout r-mail is blocked');
    expect(mail.raw).toContain('changeover rollout force r-mail --reason');
  });

  it('filters by rollout, class, label and severity', async () => {
    await publishAndSettle(
      events.cloudEvent('node.enrolled', { nodeId: 'node-7', classId: 'edge', processorType: 'arm64', characteristics: { arch: 'arm64', os: 'linux', memoryMb: 512, labels: { site: 'paris' } }, at: 'now' }, 'node-node-7'),
    );
    const subs = {
      edge: await subscribe({ name: 'edge', channel: { type: 'webhook', url: http.url('/f/edge') }, filter: { classIds: ['edge'] } }),
      core: await subscribe({ name: 'core', channel: { type: 'webhook', url: http.url('/f/core') }, filter: { classIds: ['core'] } }),
      paris: await subscribe({ name: 'paris', channel: { type: 'webhook', url: http.url('/f/paris') }, filter: { labels: { site: 'paris' } } }),
      lyon: await subscribe({ name: 'lyon', channel: { type: 'webhook', url: http.url('/f/lyon') }, filter: { labels: { site: 'lyon' } } }),
      r5: await subscribe({ name: 'r5', channel: { type: 'webhook', url: http.url('/f/r5') }, filter: { rolloutIds: ['r-5'] } }),
      critical: await subscribe({ name: 'critical', channel: { type: 'webhook', url: http.url('/f/critical') }, filter: { minSeverity: 'critical' } }),
    };
    await publishAndSettle(events.cloudEvent('rollout.blocked', sample.blocked('r-4')));
    await publishAndSettle(events.cloudEvent('rollout.failed', sample.failed('r-5')));
    const typesOf = async (s: Subscription) => (await api<Delivery[]>('GET', `/deliveries?subscriptionId=${s.id}`)).body.map((d) => d.eventType).sort();
    expect(await typesOf(subs.edge)).toEqual(['rollout.blocked']);
    expect(await typesOf(subs.core)).toEqual([]);
    expect(await typesOf(subs.paris)).toEqual(['rollout.blocked']);
    expect(await typesOf(subs.lyon)).toEqual([]);
    expect(await typesOf(subs.r5)).toEqual(['rollout.failed']);
    expect(await typesOf(subs.critical)).toEqual(['rollout.failed']);
  });

  it('skips and counts an event it does not know, and goes on', async () => {
    await events.publishRaw('changeover.events.rollout.exploded', JSON.stringify({ ...events.cloudEvent('rollout.completed', sample.completed()), type: 'io.changeover.rollout.exploded' }));
    await events.publishRaw('changeover.events.rollout.completed', 'this is not json');
    await events.publishRaw('changeover.events.rollout.completed', JSON.stringify({ ...events.cloudEvent('rollout.completed', sample.completed()), data: { rolloutId: 'r1' } }));
    await publishAndSettle(events.cloudEvent('rollout.completed', sample.completed('r-after')));
    const metrics = await (await fetch(`http://127.0.0.1:${notifier.httpPort}/metrics`)).text();
    expect(metrics).toContain('changeover_notifier_events_total{outcome="unknown-type"} 1');
    expect(metrics).toContain('changeover_notifier_events_total{outcome="invalid"} 2');
  });

  it('de-duplicates by event id per subscription: the same event twice is one delivery', async () => {
    const sub = await subscribe({ name: 'dedup', channel: { type: 'webhook', url: http.url('/dedup') } });
    const ce = events.cloudEvent('rollout.paused', sample.paused('r-dup'));
    // A different message id gets past the stream's own de-duplication, as a relay retry after the window would.
    await events.publishRaw('changeover.events.rollout.paused', JSON.stringify(ce));
    await publishAndSettle(ce);
    const log = await api<Delivery[]>('GET', `/deliveries?subscriptionId=${sub.id}`);
    expect(log.body.map((d) => d.eventId)).toEqual([ce.id]);
    await waitFor('dedup delivered', () => http.at('/dedup').length === 1);
  });

  it('logs every attempt and redelivers on request with the same event id', async () => {
    const sub = await subscribe({ name: 'log', channel: { type: 'webhook', url: http.url('/log') } });
    const ce = events.cloudEvent('rollout.completed', sample.completed('r-log'));
    await events.publish(ce);
    const [delivery] = await waitFor('a delivered delivery', async () => {
      const list = (await api<Delivery[]>('GET', `/deliveries?subscriptionId=${sub.id}&status=delivered`)).body;
      return list.length ? list : null;
    });
    const detail = (await api<DeliveryDetail>('GET', `/deliveries/${delivery!.id}`)).body;
    expect(detail).toMatchObject({ eventId: ce.id, status: 'delivered', attemptCount: 1, lastStatusCode: 200 });
    expect(detail.attempts).toEqual([expect.objectContaining({ attempt: 1, outcome: 'success', statusCode: 200, error: null })]);
    expect(detail.attempts[0]!.latencyMs).toBeGreaterThanOrEqual(0);

    expect((await api('POST', `/deliveries/${delivery!.id}/redeliver`)).status).toBe(202);
    await waitFor('a second delivery', () => http.at('/log').length === 2);
    expect(http.at('/log').map((r) => r.headers['ce-id'])).toEqual([ce.id, ce.id]);
    await waitFor('two attempts logged', async () => (await api<DeliveryDetail>('GET', `/deliveries/${delivery!.id}`)).body.attempts.length === 2);

    expect((await api<ErrorBody>('POST', '/deliveries/7b0e3f8e-3b0a-4d55-9d8e-2f7f6b1f0c11/redeliver')).status).toBe(404);
    expect((await api<ErrorBody>('GET', '/deliveries/nope')).body.code).toBe('VALIDATION_FAILED');
    expect((await api<ErrorBody>('GET', '/deliveries?status=lost')).status).toBe(400);
  });

  it('deletes a subscription: no new deliveries, the log stays', async () => {
    const sub = await subscribe({ name: 'gone', channel: { type: 'webhook', url: http.url('/gone') } });
    await publishAndSettle(events.cloudEvent('rollout.completed', sample.completed('r-del1')));
    expect((await api('DELETE', `/subscriptions/${sub.id}`)).status).toBe(204);
    expect((await api('DELETE', `/subscriptions/${sub.id}`)).status).toBe(404);
    await publishAndSettle(events.cloudEvent('rollout.completed', sample.completed('r-del2')));
    expect((await api<Delivery[]>('GET', `/deliveries?subscriptionId=${sub.id}`)).body).toHaveLength(1);
  });

  it('serves health, OpenAPI and metrics', async () => {
    const ready = await api<{ status: string; checks: Record<string, boolean> }>('GET', '/health/ready');
    expect(ready.body).toEqual({ status: 'ok', checks: { database: true, nats: true, consumer: true } });
    expect((await api('GET', '/health/live')).status).toBe(200);
    const doc = (await api<{ paths: Record<string, Record<string, unknown>> }>('GET', '/openapi.json')).body;
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/subscriptions', '/subscriptions/{id}', '/deliveries', '/deliveries/{id}', '/deliveries/{id}/redeliver']));
    const metrics = (await api('GET', '/metrics')).text;
    expect(metrics).toMatch(/changeover_deliveries_total\{channel="webhook",outcome="delivered"\} \d+/);
    expect(metrics).toMatch(/changeover_deliveries_total\{channel="email",outcome="delivered"\} [1-9]/);
  });
});

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestDatabase, startNats, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import type { DataSource } from 'typeorm';
import { EmailChannel } from '../channels/email.channel.js';
import { SlackChannel } from '../channels/slack.channel.js';
import { WebhookChannel } from '../channels/webhook.channel.js';
import { openDatabase } from '../db/data-source.js';
import { query } from '../db/sql.js';
import { EventIntake } from '../intake/event.intake.js';
import { createLogger } from '../log.js';
import { createNotifierMetrics } from '../metrics.js';
import { startNotifier, type RunningNotifier } from '../notifier.js';
import { SubscriptionStore } from '../subscriptions/subscription.store.js';
import { TEST_AUTH_ENV, TEST_LOG_LEVEL, restClient } from '../testing/api.js';
import { eventPublisher, sample, type EventPublisher } from '../testing/events.js';
import { startHttpReceiver, type HttpReceiver } from '../testing/receivers.js';
import { DeliveryWorker } from './delivery.worker.js';

// Deliveries claimed by several workers (one notifier instance or many on one database): each claim
// carries a token, so an attempt that outlived its lease cannot overwrite what a newer claim recorded.

let db: TestDatabase;
let nats: TestNats;
let http: HttpReceiver;
let events: EventPublisher;

beforeAll(async () => {
  [db, nats, http] = await Promise.all([createTestDatabase('notifier_claims'), startNats(), startHttpReceiver()]);
  events = await eventPublisher(nats.url);
}, 60_000);

afterAll(async () => {
  await events?.close();
  await Promise.all([http?.close(), nats?.stop()]);
  await db?.drop();
}, 60_000);

describe('delivery claims', () => {
  let ds: DataSource;
  const workers: DeliveryWorker[] = [];
  afterAll(async () => {
    for (const w of workers) await w.stop();
    await ds?.destroy();
  });

  it('an attempt that outlived its lease does not turn a newer claim’s delivery back into a retry', async () => {
    ds = await openDatabase(db.url);
    const subscriptions = new SubscriptionStore(ds, false);
    const sub = await subscriptions.create({ name: 'stale', channel: { type: 'webhook', url: http.url('/stale') }, filter: { eventTypes: ['rollout.completed'] } });
    // The first send hangs past the lease, then fails; the second (another worker's claim) succeeds at once.
    http.behave('/stale', (n) => (n === 1 ? { delayMs: 1500, status: 500 } : { status: 204 }));
    const ce = events.cloudEvent('rollout.completed', sample.completed('r-stale'));
    const recorded = await new EventIntake(ds).handle(new TextEncoder().encode(JSON.stringify(ce)));
    expect(recorded).toMatchObject({ kind: 'recorded', inserted: 1 });

    const metrics = createNotifierMetrics();
    const log = createLogger(TEST_LOG_LEVEL);
    const channels = { webhook: new WebhookChannel(10_000), slack: new SlackChannel(10_000), email: new EmailChannel(undefined, 'changeover@localhost', 10_000) };
    // A lease far shorter than the send: as a process stalled mid-attempt would see it.
    const policy = { maxAttempts: 5, baseMs: 5, maxMs: 20, leaseMs: 300, concurrency: 1, pollIntervalMs: 20 };
    for (let i = 0; i < 2; i++) {
      const w = new DeliveryWorker(ds, channels, policy, metrics, log);
      workers.push(w);
      w.start();
    }

    // Both attempts end: the late failure is in the attempt log, and the delivery stays delivered.
    const attempts = () => query<{ outcome: string }>(ds, `SELECT a.outcome FROM notifier.delivery_attempts a JOIN notifier.deliveries d ON d.id = a.delivery_id WHERE d.subscription_id = $1 ORDER BY a.id`, [sub.id]);
    await waitFor('both attempts logged', async () => (await attempts()).length === 2, { timeoutMs: 30_000 });
    expect((await attempts()).map((a) => a.outcome)).toEqual(['success', 'failure']);
    const [row] = await query<{ status: string; claim_token: string | null; last_status_code: number }>(ds, `SELECT status, claim_token, last_status_code FROM notifier.deliveries WHERE subscription_id = $1`, [sub.id]);
    expect(row).toEqual({ status: 'delivered', claim_token: null, last_status_code: 204 });
    // Delivered is final: no worker claims it again, so the receiver saw the event twice, by one id.
    expect(http.at('/stale').map((r) => r.headers['ce-id'])).toEqual([ce.id, ce.id]);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/changeover_deliveries_total\{[^}]*outcome="superseded"[^}]*\} 1/);
  });
});

describe('two notifier instances on one database and one durable consumer', () => {
  const BURST = 300;
  const notifiers: RunningNotifier[] = [];
  afterAll(async () => {
    for (const n of notifiers) await n.close();
  });

  it('record and send each event once per subscription, under its own event id', async () => {
    const config = {
      DATABASE_URL: db.url,
      NATS_URL: nats.url,
      NOTIFIER_HTTP_PORT: '0',
      NOTIFIER_BACKOFF_BASE_MS: '5',
      NOTIFIER_BACKOFF_MAX_MS: '50',
      NOTIFIER_POLL_INTERVAL_MS: '20',
      NOTIFIER_CONSUMER_NAME: 'notifier-pair',
      LOG_LEVEL: TEST_LOG_LEVEL,
      ...TEST_AUTH_ENV,
    };
    // Started together: both create (or find) the durable consumer and run the migrations at once.
    notifiers.push(...(await Promise.all([startNotifier(config), startNotifier(config)])));
    const api = restClient(notifiers[0]!.httpPort);
    const created = await api<{ id: string }>('POST', '/subscriptions', { name: 'pair', channel: { type: 'webhook', url: http.url('/pair') }, filter: { eventTypes: ['rollout.node-progressed'] } });
    expect(created.status).toBe(201);
    http.behave('/pair', { delayMs: 5 });

    const published = Array.from({ length: BURST }, (_, i) => events.cloudEvent('rollout.node-progressed', { ...sample.progressed('r-pair'), nodeId: `pair-${i}` }));
    await Promise.all(published.map((ce) => events.publish(ce)));

    await waitFor('every event sent', () => http.at('/pair').length >= BURST, { timeoutMs: 60_000, intervalMs: 100 });
    await waitFor('every delivery recorded as delivered', async () => {
      const [r] = await query<{ delivered: number }>(await openOnce(), `SELECT count(*) FILTER (WHERE status = 'delivered')::int AS delivered FROM notifier.deliveries WHERE subscription_id = $1`, [created.body.id]);
      return r?.delivered === BURST;
    }, { timeoutMs: 30_000 });
    const ids = http.at('/pair').map((r) => String(r.headers['ce-id']));
    expect(ids.length).toBe(BURST);
    expect([...ids].sort()).toEqual(published.map((ce) => ce.id).sort());
  });

  let checker: DataSource | undefined;
  const openOnce = async () => (checker ??= await openDatabase(db.url));
  afterAll(async () => {
    await checker?.destroy();
  });
});

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { ERROR_CODES, eventSubject, HTTP_STATUS } from '@changeover/contracts';
import { registry } from '@changeover/telemetry';
import { createTestDatabase, errorBodyProblem, mutatedPayload, processFaults, startNats, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import { startNotifier, type RunningNotifier } from '../notifier.js';
import { restClient, TEST_AUTH_ENV } from '../testing/api.js';
import { eventPublisher, sample, type EventPublisher } from '../testing/events.js';
import { startHttpReceiver, type HttpReceiver } from '../testing/receivers.js';

// Property-based fuzzing of the notifier's NATS handler (events from CHANGEOVER_EVENTS) and of every
// REST route: every event is recorded or skipped with a counted reason, never left for redelivery,
// every REST refusal is a typed, counted error, nothing crashes, and a real event is still delivered.

const RUNS = 60;
const MAX_EVENT = 64 * 1024;
let db: TestDatabase;
let nats: TestNats;
let hooks: HttpReceiver;
let events: EventPublisher;
let notifier: RunningNotifier;
let faults: ReturnType<typeof processFaults>;
let api: ReturnType<typeof restClient>;

async function counter(name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values.filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want)).reduce((a, v) => a + v.value, 0);
}
const eventsRead = () => counter('changeover_notifier_events_total');
const skipped = async () => (await counter('changeover_notifier_events_total', { outcome: 'invalid' })) + (await counter('changeover_notifier_events_total', { outcome: 'unknown-type' }));
const rejected = () => counter('changeover_rejected_messages_total', { subject_kind: 'event' });

beforeAll(async () => {
  faults = processFaults();
  [db, nats, hooks] = await Promise.all([createTestDatabase('notifier_fuzz'), startNats(), startHttpReceiver()]);
  events = await eventPublisher(nats.url);
  notifier = await startNotifier({ DATABASE_URL: db.url, NATS_URL: nats.url, NOTIFIER_HTTP_PORT: '0', NOTIFIER_BACKOFF_BASE_MS: '5', NOTIFIER_BACKOFF_MAX_MS: '50', NOTIFIER_POLL_INTERVAL_MS: '20', NOTIFIER_MAX_EVENT_BYTES: String(MAX_EVENT), LOG_LEVEL: 'silent', ...TEST_AUTH_ENV });
  api = restClient(notifier.httpPort);
  const sub = await api('POST', '/subscriptions', { name: 'fuzz-hook', channel: { type: 'webhook', url: hooks.url('/fuzz'), secret: 'sixteen-or-more-secret' }, filter: { eventTypes: ['rollout.blocked', 'rollout.completed'] } });
  expect(sub.status).toBe(201);
}, 60_000);

afterAll(async () => {
  await notifier?.close();
  await events?.close();
  await hooks?.close();
  await nats?.stop();
  await db?.drop();
  faults?.stop();
});

describe('notifier event intake under fuzzed events', () => {
  it('every mutated event is recorded or skipped with a counted reason, once, and never crashes', async () => {
    const examples = [events.cloudEvent('rollout.blocked', sample.blocked('fz-1')), events.cloudEvent('rollout.completed', sample.completed('fz-2')), events.cloudEvent('rollout.paused', sample.paused('fz-3'))];
    const skippedBefore = await skipped();
    const rejectedBefore = await rejected();
    await fc.assert(
      fc.asyncProperty(mutatedPayload(examples), fc.constantFrom('rollout.blocked', 'rollout.completed', 'node.enrolled', 'no-such.event'), async (payload, type) => {
        const read = await eventsRead();
        await events.publishRaw(eventSubject(type), payload);
        // Recorded or skipped, but read exactly once: a poison event would be redelivered instead.
        await waitFor('the event read', async () => (await eventsRead()) === read + 1, { timeoutMs: 15_000 });
      }),
      { numRuns: RUNS },
    );
    const skips = (await skipped()) - skippedBefore;
    expect(skips).toBeGreaterThan(0);
    expect((await rejected()) - rejectedBefore).toBe(skips);
    expect(faults.faults).toEqual([]);
  });

  it('skips an event over NOTIFIER_MAX_EVENT_BYTES and takes one at it', async () => {
    const tooLarge = () => counter('changeover_rejected_messages_total', { subject_kind: 'event', code: 'TOO_LARGE' });
    const before = await tooLarge();
    const ce = events.cloudEvent('rollout.completed', sample.completed('fz-size'));
    const bare = JSON.stringify(ce);
    // Trailing spaces keep the JSON valid: exactly at, then one over the limit.
    const read = await eventsRead();
    await events.publishRaw(eventSubject('rollout.completed'), bare + ' '.repeat(MAX_EVENT - bare.length));
    await events.publishRaw(eventSubject('rollout.completed'), bare + ' '.repeat(MAX_EVENT + 1 - bare.length));
    await waitFor('both read', async () => (await eventsRead()) === read + 2, { timeoutMs: 15_000 });
    expect((await tooLarge()) - before).toBe(1);
    await waitFor('the event at the limit delivered', () => hooks.received.some((r) => r.body.includes('fz-size')), { timeoutMs: 15_000 });
  });

  it('still delivers a real event after the fuzzing', async () => {
    await events.publish(events.cloudEvent('rollout.blocked', sample.blocked('after-fuzz')));
    await waitFor('the webhook called', () => hooks.received.some((r) => r.body.includes('after-fuzz')), { timeoutMs: 15_000 });
    expect(faults.faults).toEqual([]);
  });
});

describe('notifier REST routes under fuzzed bodies', () => {
  const known = { codes: ERROR_CODES, httpStatus: HTTP_STATUS };
  const routes: { method: string; path: (id: string) => string; examples: unknown[]; mayAllPass?: boolean }[] = [
    { method: 'POST', path: () => '/subscriptions', examples: [{ name: 'fz', channel: { type: 'webhook', url: 'http://127.0.0.1:9/x', secret: 'sixteen-or-more-secret' }, filter: { eventTypes: ['rollout.blocked'], classes: ['web'] } }, { name: 'm', channel: { type: 'email', to: ['a@example.com'] } }] },
    { method: 'DELETE', path: (id) => `/subscriptions/${id}`, examples: [{}] },
    { method: 'GET', path: (id) => `/subscriptions/${id}`, examples: [{}] },
    { method: 'GET', path: (id) => `/deliveries?rolloutId=${id}&status=${id}&limit=${id}`, examples: [{}] },
    { method: 'GET', path: (id) => `/deliveries/${id}`, examples: [{}] },
    { method: 'POST', path: (id) => `/deliveries/${id}/redeliver`, examples: [{}] },
    { method: 'POST', path: () => '/tokens', examples: [{ name: 'fz', role: 'viewer' }] },
    { method: 'GET', path: (id) => `/tokens?x=${id}`, examples: [{}], mayAllPass: true },
    { method: 'DELETE', path: (id) => `/tokens/${id}`, examples: [{}] },
    { method: 'GET', path: (id) => `/subscriptions?x=${id}`, examples: [{}], mayAllPass: true },
  ];
  const ids = fc.oneof(fc.constantFrom('00000000-0000-4000-8000-000000000000', 'nope', '..', '%00', 'a'.repeat(300)), fc.string({ maxLength: 20 }).map(encodeURIComponent));

  for (const r of routes) {
    it(`${r.method} ${r.path(':id')}: every mutated body gets a success or a typed, counted refusal`, async () => {
      const before = await counter('changeover_notifier_request_errors_total');
      let errors = 0;
      await fc.assert(
        fc.asyncProperty(mutatedPayload(r.examples), ids, async (payload, id) => {
          const res = await api(r.method, r.path(id || 'x'), r.method === 'GET' || r.method === 'DELETE' ? undefined : new TextDecoder().decode(payload));
          if (res.status < 400) return;
          errors++;
          expect(errorBodyProblem(res.body, known, res.status)).toBeNull();
        }),
        { numRuns: RUNS },
      );
      if (!r.mayAllPass) expect(errors).toBeGreaterThan(0);
      expect((await counter('changeover_notifier_request_errors_total')) - before).toBe(errors);
      expect(faults.faults).toEqual([]);
    });
  }
});

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { createTestDatabase, freePort, startNats, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import type { CloudEvent, Subscription } from '@changeover/contracts';
import { restClient, TEST_AUTH_ENV } from './testing/api.js';
import { eventPublisher, sample, type EventPublisher } from './testing/events.js';
import { startHttpReceiver, type HttpReceiver } from './testing/receivers.js';

// The built service, as deployed: `npm test` builds before jest.
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const BURST = 1000;
const CONCURRENCY = 16;

let db: TestDatabase;
let nats: TestNats;
let events: EventPublisher;
let http: HttpReceiver;
let child: ChildProcess | null = null;
let port: number;

function startChild(): ChildProcess {
  const proc = spawn(process.execPath, [MAIN], {
    env: {
      PATH: process.env['PATH'] ?? '',
      DATABASE_URL: db.url,
      NATS_URL: nats.url,
      NOTIFIER_HTTP_PORT: String(port),
      NOTIFIER_BACKOFF_BASE_MS: '5',
      NOTIFIER_BACKOFF_MAX_MS: '100',
      NOTIFIER_HTTP_TIMEOUT_MS: '1000',
      NOTIFIER_CONCURRENCY: String(CONCURRENCY),
      NOTIFIER_POLL_INTERVAL_MS: '50',
      LOG_LEVEL: process.env['NOTIFIER_TEST_LOG'] ?? 'error',
      ...TEST_AUTH_ENV,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return proc;
}

async function ready(): Promise<void> {
  await waitFor('notifier ready', async () => (await fetch(`http://127.0.0.1:${port}/health/ready`).catch(() => null))?.status === 200, { timeoutMs: 30_000 });
}

function kill9(proc: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    proc.once('exit', () => resolve());
    proc.kill('SIGKILL');
  });
}

beforeAll(async () => {
  [db, nats, http, port] = await Promise.all([createTestDatabase('notifier_e2e'), startNats(), startHttpReceiver(), freePort()]);
  events = await eventPublisher(nats.url);
}, 60_000);

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) await kill9(child);
  await events?.close();
  await Promise.all([http?.close(), nats?.stop()]);
  await db?.drop();
}, 60_000);

describe('notifier process', () => {
  it('loses no delivery and sends none under another id when killed with SIGKILL during a burst of 1,000', async () => {
    child = startChild();
    await ready();
    const api = restClient(port);
    const sub = (await api<Subscription>('POST', '/subscriptions', { name: 'burst', channel: { type: 'webhook', url: http.url('/burst') }, filter: { eventTypes: ['*'] } })).body;
    http.behave('/burst', { delayMs: 10 });

    const published: CloudEvent[] = [];
    for (let i = 0; i < BURST; i++) published.push(events.cloudEvent('rollout.node-progressed', { ...sample.progressed(`r-${i % 7}`), nodeId: `node-${i}` }));
    await Promise.all(published.map((ce) => events.publish(ce)));

    // Kill it in the middle: some events recorded, some deliveries in flight, most not sent yet.
    await waitFor('a first part delivered', () => http.at('/burst').length >= 150, { timeoutMs: 60_000 });
    await kill9(child);
    const beforeKill = new Set(http.at('/burst').map((r) => r.headers['ce-id'])).size;
    expect(beforeKill).toBeLessThan(BURST);

    child = startChild();
    await ready();
    const ids = () => new Set(http.at('/burst').map((r) => String(r.headers['ce-id'])));
    await waitFor('every event delivered', () => ids().size === BURST, { timeoutMs: 150_000, intervalMs: 200 });

    // Nothing lost, nothing invented: exactly the published ids.
    expect([...ids()].sort()).toEqual(published.map((ce) => ce.id).sort());
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      await waitFor('every delivery recorded as delivered', async () => {
        const { rows } = await c.query(`SELECT count(*)::int AS n, count(DISTINCT event_id)::int AS ids, count(*) FILTER (WHERE status = 'delivered')::int AS delivered FROM notifier.deliveries WHERE subscription_id = $1`, [sub.id]);
        return rows[0].n === BURST && rows[0].ids === BURST && rows[0].delivered === BURST;
      });
      // At-least-once, and a repeat carries the same id (checked above). Every send the receiver got is
      // a recorded attempt (a timed-out one is retried, and recorded), except the sends in flight at the
      // kill, which died unrecorded: at most one per concurrent slot.
      const { rows } = await c.query(`SELECT count(*)::int AS n FROM notifier.delivery_attempts a JOIN notifier.deliveries d ON d.id = a.delivery_id WHERE d.subscription_id = $1`, [sub.id]);
      const unrecorded = http.at('/burst').length - rows[0].n;
      expect(unrecorded).toBeGreaterThanOrEqual(0);
      expect(unrecorded).toBeLessThanOrEqual(CONCURRENCY);
    } finally {
      await c.end();
    }

    // A clean stop on SIGTERM.
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});

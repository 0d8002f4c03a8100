import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createTestDatabase, startNats, waitFor, type TestDatabase, type TestNats, TEST_ADMIN_TOKEN, TEST_AUTH_HEADER } from '@changeover/test-kit';
import { startRollout, type RunningRollout } from '../app.js';
import { loadConfig } from '../config.js';
import { fakeAgents, fakeRegistry, manifest, type FakeNode } from '../testing/fake-fleet.js';
import { ManualClock } from '../testing/manual-clock.js';

// Start times and maintenance windows on real Postgres and NATS, with the service's clock moved by
// the test: no wall-clock waits for the schedule, and a restart in the middle of a wait.

const fleet: FakeNode[] = [
  { id: 'web-1', classId: 'web', arch: 'x86_64' },
  { id: 'web-2', classId: 'web', arch: 'x86_64' },
  { id: 'db-1', classId: 'db', arch: 'x86_64' },
];
// Tuesday 2030-01-01 00:00 UTC, 01:00 in Berlin: the web window (02:00-04:00 Berlin) opens at 01:00 UTC.
const T0 = Date.parse('2030-01-01T00:00:00.000Z');
const MIN = 60_000;
const iso = (ms: number) => new Date(ms).toISOString();
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- HTTP answers are checked field by field below
type Json = any;
let db: TestDatabase;
let nats: TestNats;
let nc: NatsConnection;
let service: RunningRollout;
let agents: ReturnType<typeof fakeAgents>;
let base: string;
const clock = new ManualClock(new Date(T0));

const start = async (instance: string) => {
  service = await startRollout(loadConfig({ DATABASE_URL: db.url, NATS_URL: nats.url, ROLLOUT_HTTP_PORT: '0', ROLLOUT_INSTANCE_ID: instance, ROLLOUT_LEASE_MS: '2000', LOG_LEVEL: 'warn', CHANGEOVER_ADMIN_TOKEN: TEST_ADMIN_TOKEN }), { clock: clock.now, timers: clock });
  base = `http://127.0.0.1:${service.httpPort}`;
};
async function http(method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
  const res = await fetch(`${base}${path}`, { method, headers: { ...TEST_AUTH_HEADER, 'content-type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  return { status: res.status, json: await res.json() };
}
const show = async (id: string) => (await http('GET', `/rollouts/${id}`)).json;
const until = (id: string, what: string, ok: (s: Json) => boolean) => waitFor(`${id} ${what}`, async () => { const s = await show(id); return ok(s) ? s : null; }, { timeoutMs: 60_000 });
const armed = (at: number) => waitFor(`a timer at ${iso(at)}`, () => clock.waiting().includes(at), { timeoutMs: 30_000 });
const window = { days: ['tue'], start: '02:00', end: '04:00', timeZone: 'Europe/Berlin' };

beforeAll(async () => {
  [db, nats] = await Promise.all([createTestDatabase('rollout_schedules'), startNats()]);
  nc = await connect({ servers: nats.url });
  fakeRegistry(nc, fleet, [manifest('app', '1.0.0')]);
  agents = fakeAgents(nc, fleet);
  await start('sched-a');
});

afterAll(async () => {
  await service?.close();
  agents?.stop();
  await nc?.close();
  await nats?.stop();
  await db?.drop();
});

describe('schedules (real Postgres and NATS, a clock the test moves)', () => {
  it('sets and shows a class\'s maintenance windows; a bad time zone or time is a 400 naming the field', async () => {
    const set = await http('PUT', '/classes/web/windows', { windows: [window] });
    expect(set).toMatchObject({ status: 200, json: { classId: 'web', windows: [window], updatedBy: 'bootstrap-admin', openNow: false, nextOpening: iso(T0 + 60 * MIN) } });
    expect((await http('GET', '/classes/web/windows')).json).toMatchObject({ windows: [window], openNow: false, nextOpening: iso(T0 + 60 * MIN) });
    expect((await http('GET', '/classes/db/windows')).json).toMatchObject({ windows: [], openNow: true, nextOpening: null, updatedBy: null });
    for (const [bad, field] of [[{ ...window, timeZone: 'Europe/Atlantis' }, 'timeZone'], [{ ...window, start: '2:00' }, 'start'], [{ ...window, days: ['someday'] }, 'days']] as const) {
      const r = await http('PUT', '/classes/web/windows', { windows: [bad] });
      expect([field, r.status, r.json.code]).toEqual([field, 400, 'VALIDATION_FAILED']);
      expect(r.json.message).toContain(field);
    }
    expect((await http('GET', '/classes/web/windows')).json.windows).toEqual([window]);
  });

  it('a rollout with startAt stays scheduled, listed as such, and a scheduled one can be cancelled before any node hears of it', async () => {
    const later = await http('POST', '/rollouts', { rolloutId: 's-db', startAt: iso(T0 + 30 * MIN), update: { targets: [{ classes: ['db'], packages: [{ name: 'app', version: '1.0.0' }] }] } });
    expect(later).toMatchObject({ status: 201, json: { status: 'scheduled', startAt: iso(T0 + 30 * MIN) } });
    await waitFor('listed as scheduled', async () => ((await http('GET', '/rollouts?status=scheduled')).json.rollouts.some((r: Json) => r.rolloutId === 's-db') ? true : null));
    expect(await http('POST', '/rollouts', { rolloutId: 's-bad', startAt: 'tomorrow', update: { targets: [{ classes: ['db'], packages: [{ name: 'app', version: '1.0.0' }] }] } })).toMatchObject({ status: 400, json: { code: 'VALIDATION_FAILED' } });
    expect((await http('POST', '/rollouts/s-db/cancel', { reason: 'not tonight' })).json.status).toBe('cancelled');
    clock.set(new Date(T0 + 30 * MIN));
    expect((await show('s-db')).status).toBe('cancelled');
    expect(agents.proposals).not.toContain('db-1');
  });

  it('a scheduled rollout starts at its time, waits outside its class\'s window (across a restart) and changes over when the window opens', async () => {
    const startAt = T0 + 40 * MIN;
    const created = await http('POST', '/rollouts', { rolloutId: 's-web', startAt: iso(startAt), update: { targets: [{ classes: ['web'], packages: [{ name: 'app', version: '1.0.0' }] }] }, policy: { voteTimeoutMs: 60_000, changeoverTimeoutMs: 60_000, waves: { canary: 1, size: 1 } } });
    expect(created.json.status).toBe('scheduled');
    await armed(startAt);
    expect(agents.proposals).not.toContain('web-1');

    clock.set(new Date(startAt));
    // Proposed, voted, accepted; but 00:40 UTC is 01:40 in Berlin: no wave before 02:00 there.
    const waiting = await until('s-web', 'waiting for the window', (s) => s.status === 'applying' && s.waitingForWindow);
    expect(waiting).toMatchObject({ phases: { accepted: 2 }, waves: [], waitingForWindow: { until: iso(T0 + 60 * MIN), classes: ['web'] } });
    expect(waiting.stuck.reason).toContain('outside the maintenance window of class web');
    expect(agents.commits.get('web-1')).toBeUndefined();

    // A restart while it waits: the new instance rebuilds the wait from the events and arms its timer again.
    await service.close();
    await start('sched-b');
    await armed(T0 + 60 * MIN);
    expect((await show('s-web')).waitingForWindow).toEqual({ until: iso(T0 + 60 * MIN), classes: ['web'] });
    clock.advance(10 * MIN); // 00:50 UTC: still closed
    expect((await show('s-web')).waves).toEqual([]);

    clock.set(new Date(T0 + 60 * MIN));
    const done = await until('s-web', 'completed inside the window', (s) => s.status === 'completed');
    expect(done.phases).toEqual({ completed: 2 });
    expect(done.waves.map((w: Json) => w.startedAt)).toEqual([iso(T0 + 60 * MIN), iso(T0 + 60 * MIN)]);
    expect(agents.commits.get('web-1')).toBe(1);
    expect(agents.commits.get('web-2')).toBe(1);
  });

  it('the OpenAPI document lists the windows routes and startAt', async () => {
    const paths = (await http('GET', '/openapi.json')).json.paths;
    expect(paths['/classes/{classId}/windows'].put['x-role']).toBe('operator');
    expect(paths['/classes/{classId}/windows'].get['x-role']).toBe('viewer');
    expect(paths['/rollouts'].post.requestBody.content['application/json'].schema.properties.startAt).toMatchObject({ type: 'string', format: 'date-time' });
  });
});

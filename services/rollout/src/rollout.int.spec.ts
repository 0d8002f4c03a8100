import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { EventStore } from '@changeover/event-store';
import { jetstreamManager } from '@nats-io/jetstream';
import { createTestDatabase, startNats, waitFor, type TestDatabase, type TestNats, TEST_ADMIN_TOKEN, TEST_AUTH_HEADER } from '@changeover/test-kit';
import type { RolloutSummary } from '@changeover/contracts';
import { startRollout, type RunningRollout } from './app.js';
import { loadConfig } from './config.js';
import { fakeAgents, fakeRegistry, manifest, type FakeNode } from './testing/fake-fleet.js';

const fleet: FakeNode[] = [
  { id: 'web-1', classId: 'web', arch: 'x86_64' },
  { id: 'web-2', classId: 'web', arch: 'arm64' },
  { id: 'db-1', classId: 'db', arch: 'x86_64' },
  { id: 'arm-1', classId: 'edge', arch: 'arm64' },
  { id: 'busy-1', classId: 'busy', arch: 'x86_64' },
];
const packages = [manifest('app'), manifest('x86only', '1.0.0', { processorType: 'x86_64' })];

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- HTTP answers are checked field by field below
type Json = any;
let db: TestDatabase;
let nats: TestNats;
let nc: NatsConnection;
let service: RunningRollout;
let agents: ReturnType<typeof fakeAgents>;
let base: string;

async function http(method: string, path: string, body?: unknown, raw?: string): Promise<{ status: number; json: Json }> {
  const res = await fetch(`${base}${path}`, { method, headers: { ...TEST_AUTH_HEADER, 'content-type': 'application/json' }, ...(raw !== undefined ? { body: raw } : body !== undefined ? { body: JSON.stringify(body) } : {}) });
  return { status: res.status, json: await res.json() };
}
const show = async (id: string): Promise<RolloutSummary> => (await http('GET', `/rollouts/${id}`)).json;
const fast = { voteTimeoutMs: 2000, changeoverTimeoutMs: 5000, waves: { canary: 1, size: '50%' } };

/** Prometheus text → `name{labels}` → value (comments skipped). */
async function scrape(): Promise<Map<string, number>> {
  const res = await fetch(`${base}/metrics`);
  expect(res.status).toBe(200);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}
const metric = (m: Map<string, number>, key: string) => m.get(key) ?? 0;

beforeAll(async () => {
  [db, nats] = await Promise.all([createTestDatabase('rollout_int'), startNats()]);
  nc = await connect({ servers: nats.url });
  fakeRegistry(nc, fleet, packages);
  agents = fakeAgents(nc, fleet, { veto: new Map([['busy-1', 'db-compactor']]) });
  service = await startRollout(loadConfig({ DATABASE_URL: db.url, NATS_URL: nats.url, ROLLOUT_HTTP_PORT: '0', ROLLOUT_INSTANCE_ID: 'int-a', ROLLOUT_LEASE_MS: '2000', LOG_LEVEL: 'warn', CHANGEOVER_ADMIN_TOKEN: TEST_ADMIN_TOKEN }));
  base = `http://127.0.0.1:${service.httpPort}`;
});

afterAll(async () => {
  await service?.close();
  agents?.stop();
  await nc?.close();
  await nats?.stop();
  await db?.drop();
});

describe('rollout service (real NATS and Postgres, agents played by the test)', () => {
  it('carries a rollout from create to completed: class broadcast, canary then waves, every node changed over once', async () => {
    const created = await http('POST', '/rollouts', { rolloutId: 'full', update: { description: 'app 1.0.0', targets: [{ classes: ['web'], packages: [{ name: 'app', version: '1.0.0' }] }, { nodes: ['db-1'], packages: [{ name: 'app', version: '1.0.0' }] }] }, policy: fast });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ rolloutId: 'full', nodes: 3, createdBy: 'bootstrap-admin' });
    const done = await waitFor('rollout completed', async () => ((await show('full')).status === 'completed' ? show('full') : null));
    expect(done.phases).toEqual({ completed: 3 });
    expect(done.waves.map((w) => w.nodes)).toEqual([1, 2]);
    for (const n of ['web-1', 'web-2', 'db-1']) expect(agents.commits.get(n)).toBe(1);
    const store = await EventStore.connect({ url: db.url });
    const stream = await store.readStream('rollout-full');
    await store.close();
    const types = stream.map((e) => e.type);
    expect(types[0]).toBe('rollout.created');
    expect(types.at(-1)).toBe('rollout.completed');
    // Every node's vote and completion once, in events carrying nodes in lists.
    const listed = (type: string, key: 'votes' | 'nodes') => stream.filter((e) => e.type === type).flatMap((e) => (e.data as Record<string, { nodeId: string }[]>)[key]!.map((x) => x.nodeId)).sort();
    expect(listed('rollout.votes-recorded', 'votes')).toEqual(['db-1', 'web-1', 'web-2']);
    expect(listed('rollout.nodes-completed', 'nodes')).toEqual(['db-1', 'web-1', 'web-2']);
    expect(stream.map((e) => e.streamPosition)).toEqual(stream.map((_e, i) => i + 1));
    expect(stream.find((e) => e.type === 'rollout.created')!.metadata).toMatchObject({ actor: 'bootstrap-admin', actorTokenId: 'bootstrap', actorRole: 'admin' });
    const jsm = await jetstreamManager(nc);
    await waitFor('events relayed to JetStream', async () => (await jsm.streams.getMessage('CHANGEOVER_EVENTS', { last_by_subj: 'changeover.events.rollout.completed' }).catch(() => null)));
    await waitFor('projection', async () => (await http('GET', '/rollouts')).json.rollouts.find((r: RolloutSummary) => r.rolloutId === 'full' && r.status === 'completed'));
  });

  it('blocks on a veto naming node, process and reason; force is refused before and works when blocked', async () => {
    const notBlocked = await http('POST', '/rollouts/full/force', { reason: 'x' });
    expect(notBlocked.status).toBe(409);
    expect(notBlocked.json.code).toBe('INVALID_STATE');
    await http('POST', '/rollouts', { rolloutId: 'vetoed', update: { targets: [{ nodes: ['busy-1', 'db-1'], packages: [{ name: 'app', version: '1.0.0' }] }] }, policy: fast });
    const blocked = await waitFor('blocked', async () => ((await show('vetoed')).status === 'blocked' ? show('vetoed') : null));
    expect(blocked.vetoes).toEqual([{ nodeId: 'busy-1', processId: 'db-compactor', reason: 'PROCESS_BUSY', message: 'busy', retryAfterMs: 5000 }]);
    expect(blocked.stuck).toMatchObject({ nodes: ['busy-1'], processes: ['busy-1/db-compactor'] });
    expect(blocked.stuck!.hint).toContain('changeover rollout force vetoed');
    expect(agents.commits.get('busy-1')).toBeUndefined();
    const forced = await http('POST', '/rollouts/vetoed/force', { reason: 'window approved' });
    expect(forced.status).toBe(200);
    const done = await waitFor('forced rollout completed', async () => ((await show('vetoed')).status === 'completed' ? show('vetoed') : null));
    expect(done.forced).toMatchObject({ by: 'bootstrap-admin', reason: 'window approved' });
    expect(agents.commits.get('busy-1')).toBe(1);
  });

  it('serves metrics that move during a rollout: vetoes and blocked while blocked, latencies, appends and completed after', async () => {
    const before = await scrape();
    expect(metric(before, 'changeover_rollouts{state="blocked"}')).toBe(0);
    await http('POST', '/rollouts', { rolloutId: 'watched', update: { targets: [{ nodes: ['busy-1', 'db-1'], packages: [{ name: 'app', version: '1.0.0' }] }] }, policy: fast });
    await waitFor('blocked', async () => (await show('watched')).status === 'blocked');
    const blocked = await waitFor('blocked in the gauge', async () => {
      const m = await scrape();
      return metric(m, 'changeover_rollouts{state="blocked"}') === 1 ? m : null;
    });
    expect(metric(blocked, 'changeover_vetoes_total{reason="PROCESS_BUSY"}')).toBe(metric(before, 'changeover_vetoes_total{reason="PROCESS_BUSY"}') + 1);
    expect(metric(blocked, 'changeover_vote_latency_seconds_count')).toBe(metric(before, 'changeover_vote_latency_seconds_count') + 2);
    // The blocked rollout is owned here: its two nodes are counted by phase.
    expect(metric(blocked, 'changeover_nodes_by_phase{phase="vetoed"}')).toBe(1);
    expect(metric(blocked, 'changeover_nodes_by_phase{phase="accepted"}')).toBe(1);
    expect((await http('POST', '/rollouts/watched/force', { reason: 'metrics' })).status).toBe(200);
    await waitFor('completed', async () => (await show('watched')).status === 'completed');
    const after = await waitFor('completed in the gauge', async () => {
      const m = await scrape();
      return metric(m, 'changeover_rollouts{state="completed"}') === metric(before, 'changeover_rollouts{state="completed"}') + 1 ? m : null;
    });
    expect(metric(after, 'changeover_rollouts{state="blocked"}')).toBe(0);
    expect(metric(after, 'changeover_changeover_latency_seconds_count')).toBe(metric(before, 'changeover_changeover_latency_seconds_count') + 2);
    expect(metric(after, 'changeover_vote_latency_seconds_count')).toBe(metric(before, 'changeover_vote_latency_seconds_count') + 2);
    const store = await EventStore.connect({ url: db.url });
    const written = (await store.readStream('rollout-watched')).length;
    await store.close();
    expect(metric(after, 'changeover_events_appended_total')).toBeGreaterThanOrEqual(metric(before, 'changeover_events_appended_total') + written);
    // Finished rollouts are no longer owned: no node of them is counted.
    expect(metric(after, 'changeover_nodes_by_phase{phase="completed"}')).toBe(0);
    expect(after.has('changeover_outbox_lag_events')).toBe(true);
  });

  it('shows a finished rollout from its projection row while the row is as new as the stream, and folds the stream when it is not', async () => {
    await waitFor('not owned any more', () => !service.runner.isOwned('full'));
    const fromRow = await show('full');
    const { nodePhases, ...folded } = (await http('GET', '/rollouts/full?nodes=true')).json as RolloutSummary;
    expect(Object.keys(nodePhases ?? {}).sort()).toEqual(['db-1', 'web-1', 'web-2']);
    expect(fromRow).toEqual(folded);
    expect(fromRow.traceId).toMatch(/^[0-9a-f]{32}$/);
    const store = await EventStore.connect({ url: db.url });
    // The row is what answers (marked here at the same version)…
    await store.pool.query(`UPDATE rollouts SET summary = jsonb_set(summary, '{description}', '"from the row"') WHERE id = 'full'`);
    expect((await show('full')).description).toBe('from the row');
    // …and a row behind the stream is never believed.
    await store.pool.query(`UPDATE rollouts SET version = version - 1, summary = jsonb_set(summary, '{status}', '"voting"') WHERE id = 'full'`);
    await store.close();
    expect((await show('full')).status).toBe('completed');
  });

  it('regresses a node of a finished rollout', async () => {
    const r = await http('POST', '/rollouts/full/regress', { nodes: ['db-1'], reason: 'bad build' });
    expect(r.status).toBe(200);
    await waitFor('node regressed', async () => (await show('full')).phases['regressed'] === 1);
    expect(agents.regressions).toContain('db-1');
  });

  it('plans without committing: who would veto and why', async () => {
    const commitsBefore = [...agents.commits.values()].reduce((a, b) => a + b, 0);
    const r = await http('POST', '/plans', { update: { targets: [{ nodes: ['busy-1', 'db-1'], packages: [{ name: 'app', version: '1.0.0' }] }] }, voteTimeoutMs: 2000 });
    expect(r.status).toBe(200);
    expect(r.json.wouldBlock).toBe(true);
    expect(r.json.votes).toEqual([
      { nodeId: 'busy-1', decision: 'veto', affectedProcesses: ['web'], vetoes: [{ nodeId: 'busy-1', processId: 'db-compactor', reason: 'PROCESS_BUSY', message: 'busy', retryAfterMs: 5000 }] },
      { nodeId: 'db-1', decision: 'accept', affectedProcesses: ['web'], vetoes: [] },
    ]);
    expect([...agents.commits.values()].reduce((a, b) => a + b, 0)).toBe(commitsBefore);
  });

  it('refuses bad input with a typed 4xx and writes nothing', async () => {
    const cases: [unknown, number, string][] = [
      [{ update: { targets: [{ nodes: ['ghost'], packages: [{ name: 'app', version: '1.0.0' }] }] } }, 404, 'NOT_FOUND'],
      [{ update: { targets: [{ nodes: ['db-1'], packages: [{ name: 'nope', version: '9.9.9' }] }] } }, 404, 'NOT_FOUND'],
      [{ update: { targets: [] } }, 400, 'VALIDATION_FAILED'],
      [{ update: { targets: [{ classes: ['nobody'], packages: [{ name: 'app', version: '1.0.0' }] }] } }, 400, 'VALIDATION_FAILED'],
      [{ update: { targets: [{ nodes: ['arm-1'], packages: [{ name: 'x86only', version: '1.0.0' }] }] } }, 422, 'PROCESSOR_UNSUPPORTED'],
      [{ update: { targets: [{ nodes: ['db-1'], packages: [{ name: 'app', version: 'one' }] }] } }, 400, 'VALIDATION_FAILED'],
      [{ surprise: true }, 400, 'VALIDATION_FAILED'],
    ];
    const before = (await http('GET', '/rollouts')).json.rollouts.length;
    for (const [body, status, code] of cases) {
      const r = await http('POST', '/rollouts', body);
      expect([r.status, r.json.code]).toEqual([status, code]);
      expect(typeof r.json.message).toBe('string');
    }
    const notJson = await http('POST', '/rollouts', undefined, '{not json');
    expect([notJson.status, notJson.json.code]).toEqual([400, 'VALIDATION_FAILED']);
    expect((await http('GET', '/rollouts/nope')).status).toBe(404);
    expect((await http('POST', '/rollouts/nope/cancel', {})).json.code).toBe('NOT_FOUND');
    expect((await http('POST', '/rollouts/full/force', { reason: '' })).json.code).toBe('VALIDATION_FAILED');
    expect((await http('GET', '/rollouts')).json.rollouts.length).toBe(before);
  });

  it('ignores a vote from a node not in the rollout, a vote for another rollout and a duplicate completion', async () => {
    await http('POST', '/rollouts', { rolloutId: 'strict', update: { targets: [{ nodes: ['db-1'], packages: [{ name: 'app', version: '1.0.0' }] }] }, policy: fast });
    await waitFor('strict completed', async () => (await show('strict')).status === 'completed');
    const version = (await show('strict')).version;
    const inv = { active: [], previous: [], digest: `sha256:${'0'.repeat(64)}` };
    nc.publish('changeover.agent.web-1.vote', JSON.stringify({ nodeId: 'web-1', rolloutId: 'strict', attempt: 0, decision: 'veto', verdicts: [], affectedProcesses: [] }));
    nc.publish('changeover.agent.db-1.vote', JSON.stringify({ nodeId: 'web-1', rolloutId: 'strict', attempt: 0, decision: 'veto', verdicts: [], affectedProcesses: [] }));
    nc.publish('changeover.agent.db-1.progress', JSON.stringify({ nodeId: 'db-1', rolloutId: 'strict', attempt: 0, phase: 'completed', inventory: inv }));
    nc.publish('changeover.agent.db-1.progress', '{"garbage":');
    await nc.flush();
    // A later, valid command proves the reports above were processed without writing anything.
    const cancel = await http('POST', '/rollouts/strict/cancel', {});
    expect(cancel.json.code).toBe('INVALID_STATE');
    expect((await show('strict')).version).toBe(version);
  });

  it('holds a show with after and waitMs until the rollout changes (a long poll), and refuses a malformed query', async () => {
    await http('POST', '/rollouts', { rolloutId: 'polled', update: { targets: [{ nodes: ['busy-1'], packages: [{ name: 'app', version: '1.0.0' }] }] }, policy: fast });
    const blocked = await waitFor('blocked', async () => ((await show('polled')).status === 'blocked' ? show('polled') : null));
    // A blocked rollout does not change by itself: the wait runs out and the answer is the same version.
    const idle = await http('GET', `/rollouts/polled?after=${blocked.version}&waitMs=200`);
    expect([idle.status, idle.json.status, idle.json.version]).toEqual([200, 'blocked', blocked.version]);
    // Asked for what comes after the version seen, the service answers with the next change (the force) and not before it.
    let answered = false;
    const waiting = http('GET', `/rollouts/polled?after=${blocked.version}&waitMs=30000&nodes=true`).then((r) => ((answered = true), r));
    await new Promise((r) => setTimeout(r, 200));
    expect(answered).toBe(false);
    await http('POST', '/rollouts/polled/force', { reason: 'window approved' });
    const next = await waiting;
    expect(next.status).toBe(200);
    expect(next.json.version).toBeGreaterThan(blocked.version);
    expect(next.json.forced).toMatchObject({ reason: 'window approved' });
    expect(next.json.nodePhases).toBeDefined();
    // Followed change by change to its end: the last answer is the completed rollout, which the owner lets go of as it finishes.
    let last: RolloutSummary = next.json;
    while (last.status !== 'completed') last = (await http('GET', `/rollouts/polled?after=${last.version}&waitMs=30000`)).json;
    expect([last.phases, last.version]).toEqual([{ completed: 1 }, (await show('polled')).version]);
    // Already past the version: answered at once.
    expect((await http('GET', `/rollouts/polled?after=0&waitMs=30000`)).json.version).toBeGreaterThan(0);
    for (const q of ['waitMs=100', 'after=-1&waitMs=10', 'after=1&waitMs=30001', 'after=x&waitMs=1', 'nodes=yes', 'surprise=1']) {
      const r = await http('GET', `/rollouts/polled?${q}`);
      expect([q, r.status, r.json.code]).toEqual([q, 400, 'VALIDATION_FAILED']);
    }
  });

  it('serves its OpenAPI document', async () => {
    const r = await http('GET', '/openapi.json');
    expect(r.json.openapi).toBe('3.1.0');
    expect(Object.keys(r.json.paths)).toEqual(expect.arrayContaining(['/rollouts', '/rollouts/{id}/force', '/plans', '/health/live', '/health/ready']));
  });

  it('is live and ready with Postgres and NATS reachable and its migrations run', async () => {
    expect(await http('GET', '/health/live')).toMatchObject({ status: 200, json: { status: 'ok' } });
    expect(await http('GET', '/health/ready')).toMatchObject({ status: 200, json: { status: 'ok', checks: { postgres: true, nats: true, migrations: true } } });
  });
});

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { z } from 'zod';
import { decode, ERROR_CODES, HelloReport, HTTP_STATUS, ProgressReport, subjects, VoteReport, type RolloutSummary } from '@changeover/contracts';
import { registry } from '@changeover/telemetry';
import { createTestDatabase, errorBodyProblem, mutatedPayload, processFaults, startNats, TEST_ADMIN_TOKEN, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import { APPENDED_SUBJECT, AppendedNotice } from '../nats/agent-intake.js';
import { startRollout, type RunningRollout } from '../app.js';
import { loadConfig } from '../config.js';
import { fakeAgents, fakeRegistry, manifest, type FakeNode } from '../testing/fake-fleet.js';
import { progress, vote } from '../testing/fixtures.js';

// Property-based fuzzing of every NATS handler of the rollout service (agent votes, progress and
// hellos, the instances' appended notices) and of every REST route: nothing crashes, no promise
// is left rejected, every refusal is a typed error and moves the rejection counters, and the
// service still carries a rollout to completion afterwards.

const RUNS = 60;
const fleet: FakeNode[] = [{ id: 'fz-1', classId: 'fz', arch: 'x86_64' }, { id: 'fz-2', classId: 'fz', arch: 'x86_64' }];
let db: TestDatabase;
let nats: TestNats;
let nc: NatsConnection;
let service: RunningRollout;
let agents: ReturnType<typeof fakeAgents>;
let faults: ReturnType<typeof processFaults>;
let base: string;

beforeAll(async () => {
  faults = processFaults();
  [db, nats] = await Promise.all([createTestDatabase('rollout_fuzz'), startNats()]);
  nc = await connect({ servers: nats.url });
  fakeRegistry(nc, fleet, [manifest('app')]);
  agents = fakeAgents(nc, fleet);
  service = await startRollout(loadConfig({ DATABASE_URL: db.url, NATS_URL: nats.url, ROLLOUT_HTTP_PORT: '0', ROLLOUT_INSTANCE_ID: 'fuzz-a', LOG_LEVEL: 'silent', CHANGEOVER_ADMIN_TOKEN: TEST_ADMIN_TOKEN, ROLLOUT_REGISTRY_TIMEOUT_MS: '2000', ROLLOUT_HELLO_BURST: '10000' }));
  base = `http://127.0.0.1:${service.httpPort}`;
});

afterAll(async () => {
  await service?.close();
  agents?.stop();
  await nc?.close();
  await nats?.stop();
  await db?.drop();
  faults?.stop();
});

async function counter(name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values.filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want)).reduce((a, v) => a + v.value, 0);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers are checked field by field
type Json = any;
async function call(method: string, path: string, body?: Uint8Array | string, contentType = 'application/json'): Promise<{ status: number; json: Json }> {
  const res = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, ...(body !== undefined ? { 'content-type': contentType } : {}) }, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let json: Json = text;
  try {
    json = JSON.parse(text);
  } catch {
    // kept as text: the assertion below names it
  }
  return { status: res.status, json };
}

const create = (id: string) => ({ rolloutId: id, update: { description: 'fuzz', targets: [{ classes: ['fz'], packages: [{ name: 'app', version: '1.0.0' }] }] }, policy: { voteTimeoutMs: 2000, changeoverTimeoutMs: 5000 } });

async function completes(id: string): Promise<void> {
  expect((await call('POST', '/rollouts', JSON.stringify(create(id)))).status).toBe(201);
  await waitFor(`rollout ${id} completed`, async () => ((await call('GET', `/rollouts/${id}`)).json as RolloutSummary).status === 'completed', { timeoutMs: 30_000 });
}

describe('rollout NATS handlers under fuzzed input', () => {
  beforeAll(async () => {
    // An owned rollout for the fuzzed reports to aim at (r1, as the fixtures name it), left voting.
    await call('POST', '/rollouts', JSON.stringify({ ...create('r1'), policy: { voteTimeoutMs: 600_000 } }));
  });

  const hello = (nodeId: string) => ({ nodeId, classId: 'fz', processorType: 'x86_64', characteristics: { arch: 'x86_64', os: 'linux', memoryMb: 1024, labels: {} }, agentVersion: '1.0.0', clusterVersions: { min: 1, max: 1 }, inventory: { active: [], previous: [], digest: `sha256:${'e'.repeat(64)}` }, startedAt: new Date(0).toISOString() });
  const handlers: { name: string; subject: (node: string) => string; schema: z.ZodType; examples: unknown[]; kind: string; nodeBound: boolean }[] = [
    { name: 'vote', subject: (n) => subjects.agent(n, 'vote'), schema: VoteReport, examples: [vote('fz-1'), vote('fz-2', 'veto'), vote('fz-1', 'accept', { dryRun: true })], kind: 'agent', nodeBound: true },
    { name: 'progress', subject: (n) => subjects.agent(n, 'progress'), schema: ProgressReport, examples: [progress('fz-1', 'fetching'), progress('fz-2', 'failed', { error: { code: 'X', message: 'y' } })], kind: 'agent', nodeBound: true },
    { name: 'hello', subject: (n) => subjects.agent(n, 'hello'), schema: HelloReport, examples: [hello('fz-1')], kind: 'agent', nodeBound: true },
    { name: 'appended', subject: () => APPENDED_SUBJECT, schema: AppendedNotice, examples: [{ rolloutId: 'r1' }, { rolloutId: 'nope' }], kind: 'rollout', nodeBound: false },
  ];

  for (const h of handlers) {
    it(`${h.name}: every mutated message is taken or rejected with a typed, counted code; nothing crashes`, async () => {
      const rejected = () => counter('changeover_rejected_messages_total', { subject_kind: h.kind });
      let expected = await rejected();
      let refusals = 0;
      await fc.assert(
        fc.asyncProperty(mutatedPayload(h.examples), fc.constantFrom('fz-1', 'fz-2', 'fz-other'), async (payload, node) => {
          let valid: { nodeId?: string } | undefined;
          try {
            valid = decode(h.schema, payload) as { nodeId?: string };
          } catch {
            valid = undefined;
          }
          // Refused: malformed, or (for agent reports) naming another node than the subject vouches for.
          const refused = !valid || (h.nodeBound && valid.nodeId !== node);
          nc.publish(h.subject(node), payload);
          if (refused) {
            refusals++;
            expected++;
            await waitFor(`${h.name} rejection counted`, async () => (await rejected()) === expected, { timeoutMs: 15_000 });
          } else await nc.flush();
        }),
        { numRuns: RUNS },
      );
      expect(refusals).toBeGreaterThan(0);
      expect(await counter('changeover_rejected_messages_total', { subject_kind: h.kind, code: 'INTERNAL' })).toBe(0);
      expect(faults.faults).toEqual([]);
    });
  }

  it('still carries a rollout to completion after the fuzzing', async () => {
    await completes('after-nats-fuzz');
    expect(faults.faults).toEqual([]);
  });
});

describe('rollout REST routes under fuzzed bodies', () => {
  const known = { codes: ERROR_CODES, httpStatus: HTTP_STATUS };
  const routes: { method: string; path: (id: string) => string; examples: unknown[]; mayAllPass?: boolean }[] = [
    { method: 'POST', path: () => '/rollouts', examples: [create('fz-made'), { update: create('x').update }] },
    { method: 'POST', path: (id) => `/rollouts/${id}/force`, examples: [{ reason: 'ok', nodes: ['fz-1'] }, { reason: 'ok' }] },
    { method: 'POST', path: (id) => `/rollouts/${id}/cancel`, examples: [{ reason: 'stop' }, {}] },
    { method: 'POST', path: (id) => `/rollouts/${id}/revote`, examples: [{ reason: 'again' }] },
    { method: 'POST', path: (id) => `/rollouts/${id}/resume`, examples: [{}] },
    { method: 'POST', path: (id) => `/rollouts/${id}/regress`, examples: [{ reason: 'back', nodes: ['fz-1'], to: { kind: 'previous' } }, { to: { kind: 'version', package: 'app', version: '1.0.0' } }] },
    { method: 'POST', path: () => '/plans', examples: [{ update: create('x').update, voteTimeoutMs: 200 }] },
    { method: 'POST', path: () => '/rollouts/from-image', examples: [{ not: 'an image' }] },
    { method: 'POST', path: () => '/tokens', examples: [{ name: 'fz', role: 'viewer' }] },
    { method: 'GET', path: (id) => `/rollouts/${id}`, examples: [{}] },
    { method: 'GET', path: (id) => `/rollouts?limit=${id}`, examples: [{}], mayAllPass: true },
    { method: 'GET', path: (id) => `/tokens?x=${id}`, examples: [{}], mayAllPass: true },
    { method: 'DELETE', path: (id) => `/tokens/${id}`, examples: [{}] },
  ];
  const ids = fc.oneof(fc.constantFrom('r1', 'fz-made', 'nope', '..', 'a'.repeat(65), '%00', 'r1%2Fforce'), fc.string({ maxLength: 20 }).map(encodeURIComponent));

  for (const r of routes) {
    it(`${r.method} ${r.path(':id')}: every mutated body gets a success or a typed, counted refusal`, async () => {
      const before = await counter('changeover_rollout_http_errors_total');
      let errors = 0;
      await fc.assert(
        fc.asyncProperty(mutatedPayload(r.examples), ids, fc.constantFrom('application/json', 'application/json', 'text/plain', 'application/gzip'), async (payload, id, type) => {
          const res = await call(r.method, r.path(id || 'x'), r.method === 'GET' || r.method === 'DELETE' ? undefined : Buffer.from(payload), type);
          if (res.status < 400) return;
          errors++;
          expect(errorBodyProblem(res.json, known, res.status)).toBeNull();
        }),
        { numRuns: RUNS },
      );
      if (!r.mayAllPass) expect(errors).toBeGreaterThan(0);
      // 404s of unknown paths are counted too: every refusal moved the counter once.
      expect((await counter('changeover_rollout_http_errors_total')) - before).toBe(errors);
      expect(faults.faults).toEqual([]);
    });
  }

  it('still carries a rollout to completion after the fuzzing', async () => {
    await completes('after-http-fuzz');
    expect(faults.faults).toEqual([]);
  });
});

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { signManifest, type RolloutSummary } from '@changeover/contracts';
import { createTestDatabase, freePort, startNats, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import { demoKey, demoPackage, type DemoPackage } from './demo-fleet.js';
import { makeWorkDir, removeWorkDir, startProcess, type Started } from './demo-infra.js';

// One trace per rollout, end to end (after `npm run build`): the registry, the rollout service, the
// notifier and three real agents run as separate processes exporting spans by OTLP/HTTP to a
// receiver in this test. A rollout is vetoed by a process on edge-2, forced, and completes; its
// trace must hold every part, parent to child, and /metrics of each part must move meanwhile.

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const entry = (pkg: string) => join(root, pkg, 'dist/main.js');
const adminToken = randomBytes(32).toString('hex');

interface Attr { key: string; value: { stringValue?: string; intValue?: string | number; boolValue?: boolean } }
interface OtlpSpan { traceId: string; spanId: string; parentSpanId?: string; name: string; attributes?: Attr[]; events?: { name: string; attributes?: Attr[] }[]; status?: { code?: number } }
interface OtlpBody { resourceSpans: { resource: { attributes: Attr[] }; scopeSpans: { spans: OtlpSpan[] }[] }[] }
interface Span extends OtlpSpan { service: string; instance: string; pid: string }

const attr = (attrs: Attr[] | undefined, key: string) => {
  const v = attrs?.find((a) => a.key === key)?.value;
  return v?.stringValue ?? v?.intValue ?? v?.boolValue;
};

/** An OTLP/HTTP receiver: the JSON the OTLP/HTTP exporter sends to /v1/traces. */
async function otlpReceiver(): Promise<{ url: string; spans: Span[]; contentTypes: Set<string>; server: Server }> {
  const spans: Span[] = [];
  const contentTypes = new Set<string>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        contentTypes.add(String(req.headers['content-type']));
        const body = JSON.parse(Buffer.concat(chunks).toString()) as OtlpBody;
        for (const rs of body.resourceSpans) {
          const service = String(attr(rs.resource.attributes, 'service.name'));
          const instance = String(attr(rs.resource.attributes, 'service.instance.id') ?? '');
          const pid = String(attr(rs.resource.attributes, 'process.pid') ?? '');
          for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ ...s, service, instance, pid });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, spans, contentTypes, server };
}

async function http<T>(method: string, url: string, body?: unknown): Promise<T> {
  const res = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url} → ${res.status} ${text.slice(0, 500)}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

/** Sum of the samples of one metric whose labels include `labels`. */
function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name} `) && !line.startsWith(`${name}{`)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}
const scrape = async (url: string) => (await fetch(url, { headers: { authorization: `Bearer ${adminToken}` } })).text();

describe('observability end to end: one trace per rollout, metrics on every part', () => {
  let nats: TestNats;
  let db: TestDatabase;
  let otlp: Awaited<ReturnType<typeof otlpReceiver>>;
  let hook: Server;
  const delivered: string[] = [];
  let holdBlocked = true;
  let workDir = '';
  const started: Started[] = [];
  const urls = { registry: '', rollout: '', notifier: '', agents: [] as string[] };
  let startRollout: () => Promise<Started>;

  beforeAll(async () => {
    for (const pkg of ['services/registry', 'services/rollout', 'services/notifier', 'services/node-agent']) {
      try {
        readFileSync(entry(pkg));
      } catch {
        throw new Error(`build first: npx tsc -b ${pkg}`);
      }
    }
    [nats, db, otlp] = await Promise.all([startNats(), createTestDatabase('obs'), otlpReceiver()]);
    workDir = await makeWorkDir();
    hook = createServer((req, res) => {
      const type = String(req.headers['ce-type']);
      // The blocked event is refused (503, retried) until the test has seen it wait in the notifier's outbox.
      const refuse = holdBlocked && type === 'io.changeover.rollout.blocked';
      if (!refuse) delivered.push(type);
      req.resume();
      req.on('end', () => res.writeHead(refuse ? 503 : 204).end());
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()));

    const key = demoKey();
    const trustRoots = JSON.stringify({ [key.keyId]: key.publicKeyPem });
    const [registryPort, rolloutPort, notifierPort, ...agentPorts] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
    // Spans leave each process at once (batch delay 100 ms); no metrics or logs exporters.
    const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: '100', OTEL_METRICS_EXPORTER: 'none', OTEL_LOGS_EXPORTER: 'none' };
    const common = { ...otel, DATABASE_URL: db.url, NATS_URL: nats.url, LOG_LEVEL: 'info', CHANGEOVER_ADMIN_TOKEN: adminToken };
    urls.registry = `http://127.0.0.1:${registryPort}`;
    urls.rollout = `http://127.0.0.1:${rolloutPort}`;
    urls.notifier = `http://127.0.0.1:${notifierPort}`;
    started.push(await startProcess('registry', entry('services/registry'), [], { ...common, REGISTRY_HTTP_PORT: String(registryPort), REGISTRY_TRUST_ROOTS: trustRoots }, workDir));
    await waitFor('the registry', () => fetch(`${urls.registry}/health/ready`).then((r) => r.ok, () => false), { timeoutMs: 30_000, intervalMs: 100 });
    startRollout = () => startProcess('rollout', entry('services/rollout'), [], { ...common, ROLLOUT_HTTP_PORT: String(rolloutPort), ROLLOUT_RELAY: 'false', ROLLOUT_LEASE_MS: '2000' }, workDir);
    started.push(await startRollout());
    started.push(await startProcess('notifier', entry('services/notifier'), [], { ...common, NOTIFIER_HTTP_PORT: String(notifierPort), NOTIFIER_BACKOFF_BASE_MS: '50', NOTIFIER_BACKOFF_MAX_MS: '200', NOTIFIER_MAX_ATTEMPTS: '100' }, workDir));
    await waitFor('the rollout service', () => fetch(`${urls.rollout}/health/ready`).then((r) => r.ok, () => false), { timeoutMs: 30_000, intervalMs: 100 });
    await waitFor('the notifier', () => fetch(`${urls.notifier}/health/live`).then((r) => r.ok, () => false), { timeoutMs: 30_000, intervalMs: 100 });
    await http('POST', `${urls.notifier}/subscriptions`, { name: 'obs-webhook', channel: { type: 'webhook', url: `http://127.0.0.1:${(hook.address() as { port: number }).port}/hook`, secret: 'obs-secret-0123456789abcdef' }, filter: { eventTypes: ['rollout.blocked', 'rollout.completed'] } });

    for (let i = 1; i <= 3; i++) {
      const dir = join(workDir, `edge-${i}`);
      await mkdir(dir, { recursive: true });
      if (i === 2) await writeFile(join(dir, 'veto'), 'PROCESS_BUSY: edge-2 is draining a long-running export');
      urls.agents.push(`http://127.0.0.1:${agentPorts[i - 1]}`);
      started.push(
        await startProcess(`agent-edge-${i}`, entry('services/node-agent'), [], {
          ...otel,
          // Each agent its own service name, so Jaeger (and this test) tell the processes apart.
          OTEL_SERVICE_NAME: `changeover-agent-edge-${i}`,
          // edge-1 is always sampled, edge-2 and edge-3 never: edge-2's veto is kept all the same.
          AGENT_TRACE_SAMPLE_RATIO: i === 1 ? '1' : '0',
          NATS_URL: nats.url, NODE_ID: `edge-${i}`, NODE_CLASS: 'edge', AGENT_STATE_DIR: join(dir, 'state'), AGENT_TRUST_ROOTS: trustRoots, AGENT_HEARTBEAT_MS: '1000', AGENT_HEALTH_PORT: String(agentPorts[i - 1]), LOG_LEVEL: 'info',
        }, workDir, dir),
      );
    }
    await waitFor('3 agents to say hello', async () => (await http<{ nodes: unknown[] }>('GET', `${urls.registry}/nodes?status=active`)).nodes.length >= 3, { timeoutMs: 30_000, intervalMs: 200 });
    const publish = (pkg: DemoPackage) => http('POST', `${urls.registry}/packages`, { package: signManifest(pkg.manifest, key.privateKeyPem, key.keyId), blobs: Object.fromEntries(pkg.blobs.map((b) => [b.digest, b.bytes.toString('base64')])) });
    await publish(demoPackage('1.0.0'));
    await publish(demoPackage('2.0.0'));
  });

  afterAll(async () => {
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
    await new Promise<void>((r) => (hook ? hook.close(() => r()) : r()));
    await new Promise<void>((r) => (otlp ? otlp.server.close(() => r()) : r()));
    await db?.drop();
    await nats?.stop();
    if (workDir && !process.env['KEEP_LOGS']) await removeWorkDir(workDir);
  });

  const create = (version: string) => http<RolloutSummary>('POST', `${urls.rollout}/rollouts`, { update: { description: `demo-api ${version}`, targets: [{ classes: ['edge'], packages: [{ name: 'demo-api', version }] }] }, policy: { waves: { canary: 1, size: '100%', successThreshold: 1 } } });
  const until = (id: string, ok: (s: RolloutSummary) => boolean, what: string) => waitFor(what, async () => {
    const s = await http<RolloutSummary>('GET', `${urls.rollout}/rollouts/${id}`);
    return ok(s) ? s : null;
  }, { timeoutMs: 60_000, intervalMs: 200 });

  it('a vetoed, forced and completed rollout is one trace across the services and the agents, and /metrics moves meanwhile', async () => {
    // v1 everywhere first: nothing runs yet, so nobody vetoes.
    const first = await create('1.0.0');
    await until(first.rolloutId, (s) => s.status === 'completed', 'the first rollout to complete');
    await waitFor('the first completion delivered', async () => metric(await scrape(`${urls.notifier}/metrics`), 'changeover_deliveries_total', { outcome: 'delivered' }) >= 1, { timeoutMs: 30_000, intervalMs: 100 });

    const before = { agent2: await scrape(`${urls.agents[1]}/metrics`), agent1: await scrape(`${urls.agents[0]}/metrics`), registry: await scrape(`${urls.registry}/metrics`), notifier: await scrape(`${urls.notifier}/metrics`) };
    const second = await create('2.0.0');
    expect(second.traceId).toMatch(/^[0-9a-f]{32}$/);
    const traceId = second.traceId!;
    const blocked = await until(second.rolloutId, (s) => s.status === 'blocked', 'the veto');
    expect(blocked.vetoes.map((v) => `${v.nodeId}:${v.reason}`)).toEqual(['edge-2:PROCESS_BUSY']);
    expect(blocked.traceId).toBe(traceId);

    // Scraped while the rollout waits on the operator: the veto is counted on edge-2, and the registry appended events.
    const during = { agent2: await scrape(`${urls.agents[1]}/metrics`), registry: await scrape(`${urls.registry}/metrics`) };
    expect(metric(during.agent2, 'changeover_vetoes_total', { reason: 'PROCESS_BUSY' })).toBe(metric(before.agent2, 'changeover_vetoes_total', { reason: 'PROCESS_BUSY' }) + 1);
    expect(metric(during.agent2, 'changeover_votes_total', { decision: 'veto' })).toBe(metric(before.agent2, 'changeover_votes_total', { decision: 'veto' }) + 1);
    expect(metric(during.agent2, 'changeover_vote_latency_seconds_count')).toBeGreaterThan(metric(before.agent2, 'changeover_vote_latency_seconds_count'));
    // Rollouts by state come from the projection, written a moment after the state changes.
    await waitFor('the rollouts gauge to show the blocked rollout', async () => metric(await scrape(`${urls.rollout}/metrics`), 'changeover_rollouts', { state: 'blocked' }) === 1, { timeoutMs: 30_000, intervalMs: 100 });
    expect(during.registry).toMatch(/^changeover_outbox_lag_events \d+$/m);
    // The blocked notification waits in the notifier's outbox while its webhook refuses it, then leaves it.
    await waitFor('the blocked delivery to wait in the outbox', async () => metric(await scrape(`${urls.notifier}/metrics`), 'changeover_notifier_pending_deliveries') >= 1, { timeoutMs: 30_000, intervalMs: 100 });
    expect(metric(await scrape(`${urls.notifier}/metrics`), 'changeover_deliveries_total', { outcome: 'retry' })).toBeGreaterThan(metric(before.notifier, 'changeover_deliveries_total', { outcome: 'retry' }));
    holdBlocked = false;

    // The rollout service restarts while the rollout waits: the new process continues the same trace.
    const oldRollout = started.find((s) => s.name === 'rollout')!;
    await oldRollout.stop();
    started.splice(started.indexOf(oldRollout), 1, await startRollout());
    await waitFor('the restarted rollout service', () => fetch(`${urls.rollout}/health/ready`).then((r) => r.ok, () => false), { timeoutMs: 30_000, intervalMs: 100 });
    await http('POST', `${urls.rollout}/rollouts/${second.rolloutId}/force`, { reason: 'the export resumes after the upgrade' });
    const done = await until(second.rolloutId, (s) => ['completed', 'failed', 'aborted', 'cancelled'].includes(s.status), 'the forced rollout to finish');
    expect(done.status).toBe('completed');
    await waitFor('the completion webhook', () => delivered.filter((t) => t === 'io.changeover.rollout.completed').length >= 2, { timeoutMs: 30_000, intervalMs: 100 });
    // The blocked and the completed event of this rollout, counted by outcome on the notifier.
    const deliveredBefore = metric(before.notifier, 'changeover_deliveries_total', { outcome: 'delivered' });
    await waitFor('the notifier to count both deliveries', async () => metric(await scrape(`${urls.notifier}/metrics`), 'changeover_deliveries_total', { outcome: 'delivered' }) >= deliveredBefore + 2, { timeoutMs: 30_000, intervalMs: 100 });

    const after = { agent1: await scrape(`${urls.agents[0]}/metrics`), registry: await scrape(`${urls.registry}/metrics`), notifier: await scrape(`${urls.notifier}/metrics`), rollout: await scrape(`${urls.rollout}/metrics`) };
    expect(metric(after.agent1, 'changeover_changeover_latency_seconds_count')).toBe(metric(before.agent1, 'changeover_changeover_latency_seconds_count') + 1);
    expect(metric(after.agent1, 'changeover_fetched_bytes_total')).toBeGreaterThan(metric(before.agent1, 'changeover_fetched_bytes_total'));
    expect(metric(after.notifier, 'changeover_deliveries_total', { outcome: 'delivered' })).toBe(deliveredBefore + 2);
    await waitFor('the notifier outbox to empty', async () => metric(await scrape(`${urls.notifier}/metrics`), 'changeover_notifier_pending_deliveries') === 0, { timeoutMs: 30_000, intervalMs: 100 });
    await waitFor('the rollouts gauge to show both completed', async () => metric(await scrape(`${urls.rollout}/metrics`), 'changeover_rollouts', { state: 'completed' }) === 2, { timeoutMs: 30_000, intervalMs: 100 });
    expect(metric(after.rollout, 'changeover_events_appended_total')).toBeGreaterThan(0);

    // The trace: wait until every part has exported its spans of this rollout.
    const inTrace = () => otlp.spans.filter((s) => s.traceId === traceId);
    const has = (service: string, name: string) => inTrace().some((s) => s.service === service && s.name === name);
    await waitFor('the spans of every part', () =>
      has('changeover-rollout', 'rollout') && has('changeover-rollout', 'rollout.verify') &&
      has('changeover-agent-edge-1', 'agent.propose') && has('changeover-agent-edge-1', 'agent.commit') && has('changeover-agent-edge-2', 'agent.propose') &&
      inTrace().some((s) => s.service === 'changeover-registry') &&
      inTrace().filter((s) => s.service === 'changeover-notifier' && s.name.startsWith('notifier.deliver')).length >= 2 &&
      // Each process exports on its own schedule: a child can arrive before its parent.
      inTrace().every((s) => !s.parentSpanId || inTrace().some((p) => p.spanId === s.parentSpanId)),
    { timeoutMs: 30_000, intervalMs: 200 }).catch(() => undefined); // on a timeout, the assertions below say what is missing
    expect([...otlp.contentTypes]).toEqual(['application/json']);

    const spans = inTrace();
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const parentOf = (s: Span) => (s.parentSpanId ? byId.get(s.parentSpanId) : undefined);
    const services = new Set(spans.map((s) => s.service));
    expect(services.size).toBeGreaterThanOrEqual(5);
    expect([...services].sort()).toEqual(['changeover-agent-edge-1', 'changeover-agent-edge-2', 'changeover-notifier', 'changeover-registry', 'changeover-rollout']);

    // One root, opened by the rollout service; every other span's parent is in the trace (one tree).
    const roots = spans.filter((s) => !s.parentSpanId);
    expect(roots.map((s) => `${s.service}/${s.name}`)).toEqual(['changeover-rollout/rollout']);
    expect(attr(roots[0]!.attributes, 'changeover.rollout_id')).toBe(second.rolloutId);
    const orphans = spans.filter((s) => s.parentSpanId && !byId.has(s.parentSpanId)).map((s) => `${s.service}/${s.name}`);
    expect(orphans).toEqual([]);

    // The rollout's steps are children of its root.
    const root = roots[0]!;
    const step = (name: string) => spans.filter((s) => s.service === 'changeover-rollout' && s.name === name);
    for (const name of ['rollout.propose', 'rollout.vote-tally', 'rollout.force', 'rollout.commit-wave', 'rollout.verify']) {
      expect({ name, parents: step(name).map((s) => parentOf(s)?.spanId) }).toEqual({ name, parents: step(name).map(() => root.spanId) });
      expect(step(name).length).toBeGreaterThan(0);
    }
    expect(step('rollout.vote-tally').map((s) => attr(s.attributes, 'changeover.outcome'))).toContain('blocked');
    // Before and after the restart: the root and the proposal by the first process, force and commit by the second.
    const pidOf = (name: string) => new Set(step(name).map((s) => s.pid));
    expect(pidOf('rollout.force')).toEqual(pidOf('rollout.commit-wave'));
    expect([...pidOf('rollout.force')].some((pid) => pid === root.pid || pidOf('rollout.propose').has(pid))).toBe(false);
    expect(root.pid).toMatch(/^\d+$/);

    // The registry answered inside the proposal (its handler continued the trace).
    const registrySpans = spans.filter((s) => s.service === 'changeover-registry');
    expect(registrySpans.some((s) => /^rpc changeover\.registry\./.test(s.name) && parentOf(parentOf(s)!)?.name === 'rollout.propose')).toBe(true);

    // Each traced agent: propose under the rollout's propose, with a vote span whose events are the process verdicts.
    const agentSpans = (i: number, name: string) => spans.filter((s) => s.service === `changeover-agent-edge-${i}` && s.name === name);
    for (const i of [1, 2]) {
      expect(agentSpans(i, 'agent.propose').map((p) => parentOf(p)?.name)).toEqual(['rollout.propose']);
      const votes = agentSpans(i, 'agent.vote');
      expect(votes.map((v) => parentOf(v)?.name)).toEqual(['agent.propose']);
      const verdicts = votes.flatMap((v) => v.events ?? []).filter((e) => e.name === 'verdict');
      expect(verdicts.length).toBeGreaterThan(0);
      if (i === 2) expect(verdicts.some((e) => attr(e.attributes, 'changeover.decision') === 'veto' && attr(e.attributes, 'changeover.reason') === 'PROCESS_BUSY')).toBe(true);
      else expect(verdicts.every((e) => attr(e.attributes, 'changeover.decision') === 'accept')).toBe(true);
      expect(new Set(spans.filter((s) => s.service === `changeover-agent-edge-${i}`).map((s) => s.instance))).toEqual(new Set([`edge-${i}`]));
    }
    // edge-2 is not sampled by its ratio (0) but vetoed: its proposal is kept, its (successful) commit is not.
    expect(agentSpans(2, 'agent.propose').map((p) => [attr(p.attributes, 'changeover.sampled'), attr(p.attributes, 'changeover.kept')])).toEqual([[false, 'veto']]);
    expect(agentSpans(2, 'agent.commit')).toEqual([]);
    // edge-1 (ratio 1): the commit under the wave, with fetch, changeover barrier, health check and switch.
    const commits = agentSpans(1, 'agent.commit');
    expect(commits.map((c) => parentOf(c)?.name)).toEqual(['rollout.commit-wave']);
    expect(spans.filter((s) => s.parentSpanId === commits[0]!.spanId).map((s) => s.name)).toEqual(expect.arrayContaining(['agent.fetch', 'agent.barrier', 'agent.health-check', 'agent.switch']));
    // edge-3 (ratio 0, accepted and completed): no span of it, and its reports went out unsampled, so the
    // rollout service recorded none for them either (every span above has its parent in the trace).
    expect(spans.filter((s) => s.service === 'changeover-agent-edge-3' || s.name.includes('edge-3'))).toEqual([]);
    expect(done.phases['completed']).toBe(3);

    // The notifier delivered the blocked and completed events inside the rollout's trace.
    const deliveries = spans.filter((s) => s.service === 'changeover-notifier' && s.name === 'notifier.deliver webhook');
    expect(deliveries.length).toBeGreaterThanOrEqual(2);

    // The agents' log lines of this rollout carry its trace id (pino JSON on stderr, in the agent's log file).
    const logLines = readFileSync(join(workDir, 'agent-edge-2.log'), 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logLines.some((l) => l['trace_id'] === traceId && typeof l['span_id'] === 'string')).toBe(true);
  });
});

#!/usr/bin/env node
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { signManifest, type NodeRecord, type RolloutSummary } from '@changeover/contracts';
import { demoKey, demoPackage, type DemoPackage } from './demo-fleet.js';
import { ensureNats, ensurePostgres, log, makeWorkDir, removeWorkDir, SERVICE_NODE_FLAGS, startProcess, waitUntil, type Started } from './demo-infra.js';

// `npm run demo`: the services, three real agents running a real module, 200 simulated nodes in
// two classes, and two rollouts: v1 everywhere, then v2 — vetoed by one process, forced, completed.

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const entry = (pkg: string) => join(root, pkg, 'dist/main.js');
const SIMULATED_PER_CLASS = 100;
const REAL_AGENTS = 3;
const DEADLINE_MS = 55_000;

const started: Started[] = [];
let workDir = '';
// The services' bootstrap admin token (CHANGEOVER_ADMIN_TOKEN), fresh for each run.
const adminToken = randomBytes(32).toString('hex');

async function http<T>(method: string, url: string, body?: unknown): Promise<T> {
  const res = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url} → ${res.status} ${text.slice(0, 500)}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

async function freePort(): Promise<number> {
  const { createServer: net } = await import('node:net');
  return new Promise((res) => {
    const s = net().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

async function publish(registry: string, pkg: DemoPackage, key: ReturnType<typeof demoKey>): Promise<void> {
  const blobs = Object.fromEntries(pkg.blobs.map((b) => [b.digest, b.bytes.toString('base64')]));
  await http('POST', `${registry}/packages`, { package: signManifest(pkg.manifest, key.privateKeyPem, key.keyId), blobs });
  log(`published ${pkg.manifest.name}@${pkg.manifest.version} (${pkg.blobs.length} modules, signed by ${key.keyId})`);
}

async function waitRollout(rollout: string, id: string, until: (s: RolloutSummary) => boolean, what: string, deadline: number): Promise<RolloutSummary> {
  let last: RolloutSummary | undefined;
  let shown = '';
  await waitUntil(
    what,
    async () => {
      last = await http<RolloutSummary>('GET', `${rollout}/rollouts/${id}`);
      const line = `${last.status} ${Object.entries(last.phases).map(([p, n]) => `${p}=${n}`).join(' ')}`;
      if (line !== shown) log(`  rollout ${id}: ${line}`);
      shown = line;
      return until(last);
    },
    Math.max(1000, deadline - Date.now()),
  );
  return last!;
}

/** What a node reports it runs (active set and the previous one kept for regression). */
async function runningOn(registry: string, nodeId: string): Promise<string> {
  const node = await http<NodeRecord>('GET', `${registry}/nodes/${nodeId}`);
  const list = (ps: { name: string; version: string }[] = []) => ps.map((p) => `${p.name}@${p.version}`).join(', ') || 'nothing';
  return `${list(node.inventory?.active)} (kept for regression: ${list(node.inventory?.previous)})`;
}

/** Receives the notifier's webhooks, to show that people and systems hear of the veto. */
async function webhookReceiver(): Promise<{ url: string; types: string[]; server: Server }> {
  const types: string[] = [];
  const server = createServer((req, res) => {
    const type = req.headers['ce-type'];
    if (typeof type === 'string') types.push(type);
    req.resume();
    req.on('end', () => res.writeHead(204).end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/hook`, types, server };
}

async function main(): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  workDir = await makeWorkDir();
  const pg = await ensurePostgres(process.env['DATABASE_URL'], workDir);
  if (pg.started) started.push(pg.started);
  const nats = await ensureNats(process.env['NATS_URL'], workDir);
  if (nats.started) started.push(nats.started);

  const key = demoKey();
  const trustRoots = JSON.stringify({ [key.keyId]: key.publicKeyPem });
  const [registryPort, rolloutPort, notifierPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const common = { DATABASE_URL: pg.url, NATS_URL: nats.url, LOG_LEVEL: 'info', CHANGEOVER_ADMIN_TOKEN: adminToken };
  const registry = `http://127.0.0.1:${registryPort}`;
  const rollout = `http://127.0.0.1:${rolloutPort}`;
  const notifier = `http://127.0.0.1:${notifierPort}`;

  // Registry first: it migrates the shared event store before the others start.
  started.push(await startProcess('registry', entry('services/registry'), [], { ...common, REGISTRY_HTTP_PORT: String(registryPort), REGISTRY_TRUST_ROOTS: trustRoots, REGISTRY_STALE_AFTER_MS: '10000' }, workDir, undefined, SERVICE_NODE_FLAGS));
  await waitUntil('the registry', () => fetch(`${registry}/health`).then((r) => r.ok), 30_000);
  started.push(await startProcess('rollout', entry('services/rollout'), [], { ...common, ROLLOUT_HTTP_PORT: String(rolloutPort), ROLLOUT_RELAY: 'false' }, workDir, undefined, SERVICE_NODE_FLAGS));
  started.push(await startProcess('notifier', entry('services/notifier'), [], { ...common, NOTIFIER_HTTP_PORT: String(notifierPort), NOTIFIER_BACKOFF_BASE_MS: '50' }, workDir, undefined, SERVICE_NODE_FLAGS));
  await waitUntil('the rollout service', () => fetch(`${rollout}/health`).then((r) => r.ok), 30_000);
  await waitUntil('the notifier', () => fetch(`${notifier}/health/live`).then((r) => r.ok), 30_000);
  log(`registry ${registry}, rollout ${rollout}, notifier ${notifier}`);

  const hook = await webhookReceiver();
  await http('POST', `${notifier}/subscriptions`, { name: 'demo-webhook', channel: { type: 'webhook', url: hook.url, secret: 'demo-secret-0123456789' }, filter: { eventTypes: ['rollout.blocked', 'rollout.completed', 'rollout.dependency-discrepancy'] } });

  // Three real agents (class edge) with real module processes; the second one's process will veto.
  for (let i = 1; i <= REAL_AGENTS; i++) {
    const dir = join(workDir, `edge-${i}`);
    await mkdir(dir, { recursive: true });
    if (i === 2) await writeFile(join(dir, 'veto'), 'PROCESS_BUSY: edge-2 is draining a long-running export');
    const agent = await startProcess(`agent-edge-${i}`, entry('services/node-agent'), [], {
      NATS_URL: nats.url, NODE_ID: `edge-${i}`, NODE_CLASS: 'edge', AGENT_STATE_DIR: join(dir, 'state'), AGENT_TRUST_ROOTS: trustRoots, AGENT_HEARTBEAT_MS: '1000', LOG_LEVEL: 'info',
    }, workDir, dir);
    started.push(agent);
  }
  for (const cls of ['web', 'api']) {
    started.push(await startProcess(`simulated-${cls}`, entry('services/node-agent'), ['--simulate', String(SIMULATED_PER_CLASS), '--class', cls, '--node-prefix', cls, '--heartbeat-ms', '2000'], { NATS_URL: nats.url, AGENT_TRUST_ROOTS: trustRoots, LOG_LEVEL: 'info' }, workDir));
  }
  const fleet = REAL_AGENTS + 2 * SIMULATED_PER_CLASS;
  await waitUntil(`${fleet} nodes to say hello`, async () => (await http<{ nodes: unknown[] }>('GET', `${registry}/nodes?status=active&limit=1000`)).nodes.length >= fleet, 20_000);
  log(`${fleet} nodes active: ${REAL_AGENTS} real agents (class edge), ${SIMULATED_PER_CLASS} simulated in class web, ${SIMULATED_PER_CLASS} in class api`);

  const v1 = demoPackage('1.0.0');
  const v2 = demoPackage('2.0.0');
  await publish(registry, v1, key);
  await publish(registry, v2, key);

  const targets = (version: string) => [{ classes: ['edge', 'web', 'api'], packages: [{ name: 'demo-api', version }] }];
  const policy = { waves: { canary: 3, size: '50%', successThreshold: 1 } };
  const first = await http<RolloutSummary>('POST', `${rollout}/rollouts`, { update: { description: 'install demo-api 1.0.0', targets: targets('1.0.0') }, policy });
  log(`rollout ${first.rolloutId}: install demo-api 1.0.0 on ${fleet} nodes`);
  await waitRollout(rollout, first.rolloutId, (s) => s.status === 'completed', 'the first rollout to complete', deadline);
  log(`edge-1 runs ${await runningOn(registry, 'edge-1')}`);

  const second = await http<RolloutSummary>('POST', `${rollout}/rollouts`, { update: { description: 'upgrade demo-api to 2.0.0', targets: targets('2.0.0') }, policy });
  log(`rollout ${second.rolloutId}: upgrade demo-api to 2.0.0`);
  const blocked = await waitRollout(rollout, second.rolloutId, (s) => s.status === 'blocked' || s.status === 'completed', 'the vote', deadline);
  if (blocked.status !== 'blocked') throw new Error('expected a veto from edge-2, but the rollout was not blocked');
  for (const v of blocked.vetoes) log(`  VETO node ${v.nodeId} process ${v.processId}: ${v.reason} — ${v.message.trim()}`);
  log(`  why stuck: ${blocked.stuck?.reason}; to go on: ${blocked.stuck?.hint}`);
  await waitUntil('the veto notification', () => hook.types.includes('io.changeover.rollout.blocked'), Math.max(1000, deadline - Date.now()));
  log('  the notifier delivered io.changeover.rollout.blocked to the webhook subscriber');

  await http('POST', `${rollout}/rollouts/${second.rolloutId}/force`, { reason: 'demo: the export can be resumed after the upgrade' });
  log('operator forced the rollout');
  const done = await waitRollout(rollout, second.rolloutId, (s) => ['completed', 'failed', 'aborted', 'cancelled'].includes(s.status), 'the forced rollout to finish', deadline);
  if (done.status !== 'completed') throw new Error(`rollout ended ${done.status}`);
  log(`dependency check: ${done.discrepancies.length} discrepancies; edge-2 runs ${await runningOn(registry, 'edge-2')}`);
  if (done.discrepancies.length) throw new Error('dependency discrepancies after the rollout');
  hook.server.close();
  log(`summary: ${fleet} nodes, 2 rollouts, 1 veto forced, ${done.forced ? 'forced' : 'not forced'}`);
  console.log(`demo: rollout ${second.rolloutId} completed on ${done.nodes} nodes`);
}

async function cleanup(): Promise<void> {
  for (const s of started.reverse()) await s.stop().catch(() => undefined);
  if (workDir && !process.env['DEMO_KEEP']) await removeWorkDir(workDir);
}

main()
  .then(cleanup)
  .then(() => process.exit(0))
  .catch(async (e: unknown) => {
    console.error(`demo: FAILED: ${e instanceof Error ? e.message : String(e)}${workDir ? ` (logs in ${workDir}; set DEMO_KEEP=1 to keep them)` : ''}`);
    process.env['DEMO_KEEP'] = '1';
    await cleanup();
    process.exit(1);
  });

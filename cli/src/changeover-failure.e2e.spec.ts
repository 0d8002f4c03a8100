import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { signManifest, type RolloutSummary } from '@changeover/contracts';
import { createTestDatabase, freePort, startNats, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import { demoKey, demoPackage, type DemoPackage } from './demo-fleet.js';
import { makeWorkDir, removeWorkDir, startProcess, type Started } from './demo-infra.js';

// The changeover barrier on its failure path, end to end (after `npx tsc -b`): the registry, the
// rollout service, the notifier and two real agents as separate processes. The running service's
// prepare hook answers "not ready" on edge-2: no node may end on the new version, the rollout ends
// aborted with a typed reason naming the node and the process, and the notifier's webhook gets it.

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const entry = (pkg: string) => join(root, pkg, 'dist/main.js');
const adminToken = randomBytes(32).toString('hex');

/** The demo service with a prepare hook that refuses while a `not-ready` file is in the agent's directory. */
function barrierPackage(version: string): DemoPackage {
  const pkg = demoPackage(version);
  const [service, ...rest] = pkg.blobs;
  const source = service!.bytes
    .toString()
    .replace("if (process.argv[2] === 'evaluate') {", "if (process.argv[2] === 'prepare') {\n  if (fs.existsSync('not-ready')) { process.stdout.write(fs.readFileSync('not-ready', 'utf8')); process.exit(1); }\n  process.exit(0);\n}\nif (process.argv[2] === 'evaluate') {");
  const bytes = Buffer.from(source);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const modules = pkg.manifest.modules.map((m) => (m.name === 'demo-api' ? { ...m, size: bytes.length, digest, run: { ...m.run!, hooks: { ...m.run!.hooks, prepare: ['node', '{module}', 'prepare'] } } } : m));
  return { manifest: { ...pkg.manifest, modules }, blobs: [{ digest, bytes }, ...rest] };
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

interface Delivered { type: string; data: Record<string, unknown> }

describe('a process not ready at the changeover barrier fails the rollout on every node', () => {
  let nats: TestNats;
  let db: TestDatabase;
  let hook: Server;
  const delivered: Delivered[] = [];
  let workDir = '';
  const started: Started[] = [];
  const urls = { registry: '', rollout: '', notifier: '' };
  const stateOf = (i: number) => JSON.parse(readFileSync(join(workDir, `edge-${i}`, 'state', 'state.json'), 'utf8')).state as { active: { manifest: { name: string; version: string } }[]; journal: unknown };

  beforeAll(async () => {
    for (const pkg of ['services/registry', 'services/rollout', 'services/notifier', 'services/node-agent']) {
      try {
        readFileSync(entry(pkg));
      } catch {
        throw new Error(`build first: npx tsc -b ${pkg}`);
      }
    }
    [nats, db] = await Promise.all([startNats(), createTestDatabase('barrier')]);
    workDir = await makeWorkDir();
    hook = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString() || '{}') as { data?: Record<string, unknown> };
        delivered.push({ type: String(req.headers['ce-type']), data: body.data ?? body });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()));

    const key = demoKey();
    const trustRoots = JSON.stringify({ [key.keyId]: key.publicKeyPem });
    const [registryPort, rolloutPort, notifierPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const common = { OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none', OTEL_LOGS_EXPORTER: 'none', DATABASE_URL: db.url, NATS_URL: nats.url, LOG_LEVEL: 'info', CHANGEOVER_ADMIN_TOKEN: adminToken };
    urls.registry = `http://127.0.0.1:${registryPort}`;
    urls.rollout = `http://127.0.0.1:${rolloutPort}`;
    urls.notifier = `http://127.0.0.1:${notifierPort}`;
    started.push(await startProcess('registry', entry('services/registry'), [], { ...common, REGISTRY_HTTP_PORT: String(registryPort), REGISTRY_TRUST_ROOTS: trustRoots }, workDir));
    await waitFor('the registry', () => fetch(`${urls.registry}/health/ready`).then((r) => r.ok, () => false), { timeoutMs: 30_000, intervalMs: 100 });
    started.push(await startProcess('rollout', entry('services/rollout'), [], { ...common, ROLLOUT_HTTP_PORT: String(rolloutPort), ROLLOUT_RELAY: 'false', ROLLOUT_LEASE_MS: '2000' }, workDir));
    started.push(await startProcess('notifier', entry('services/notifier'), [], { ...common, NOTIFIER_HTTP_PORT: String(notifierPort), NOTIFIER_BACKOFF_BASE_MS: '50', NOTIFIER_BACKOFF_MAX_MS: '200' }, workDir));
    await waitFor('the rollout service', () => fetch(`${urls.rollout}/health/ready`).then((r) => r.ok, () => false), { timeoutMs: 30_000, intervalMs: 100 });
    await waitFor('the notifier', () => fetch(`${urls.notifier}/health/live`).then((r) => r.ok, () => false), { timeoutMs: 30_000, intervalMs: 100 });
    await http('POST', `${urls.notifier}/subscriptions`, { name: 'barrier-webhook', channel: { type: 'webhook', url: `http://127.0.0.1:${(hook.address() as { port: number }).port}/hook`, secret: 'barrier-secret-0123456789abcdef' }, filter: { eventTypes: ['rollout.node-failed', 'rollout.aborted', 'rollout.completed'] } });

    for (let i = 1; i <= 2; i++) {
      const dir = join(workDir, `edge-${i}`);
      await mkdir(dir, { recursive: true });
      started.push(
        await startProcess(`agent-edge-${i}`, entry('services/node-agent'), [], {
          OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none', OTEL_LOGS_EXPORTER: 'none',
          NATS_URL: nats.url, NODE_ID: `edge-${i}`, NODE_CLASS: 'edge', AGENT_STATE_DIR: join(dir, 'state'), AGENT_TRUST_ROOTS: trustRoots, AGENT_HEARTBEAT_MS: '1000', LOG_LEVEL: 'info',
        }, workDir, dir),
      );
    }
    await waitFor('2 agents to say hello', async () => (await http<{ nodes: unknown[] }>('GET', `${urls.registry}/nodes?status=active`)).nodes.length >= 2, { timeoutMs: 30_000, intervalMs: 200 });
    const publish = (pkg: DemoPackage) => http('POST', `${urls.registry}/packages`, { package: signManifest(pkg.manifest, key.privateKeyPem, key.keyId), blobs: Object.fromEntries(pkg.blobs.map((b) => [b.digest, b.bytes.toString('base64')])) });
    await publish(barrierPackage('1.0.0'));
    await publish(barrierPackage('2.0.0'));
  });

  afterAll(async () => {
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
    await new Promise<void>((r) => (hook ? hook.close(() => r()) : r()));
    await db?.drop();
    await nats?.stop();
    if (workDir && !process.env['KEEP_LOGS']) await removeWorkDir(workDir);
  });

  const create = (version: string) =>
    http<RolloutSummary>('POST', `${urls.rollout}/rollouts`, { update: { description: `demo-api ${version}`, targets: [{ classes: ['edge'], packages: [{ name: 'demo-api', version }] }] }, policy: { waves: { canary: 1, size: '100%', successThreshold: 1 }, errorThreshold: 0, onErrorThreshold: 'abort' } });
  const until = (id: string, ok: (s: RolloutSummary) => boolean, what: string) =>
    waitFor(what, async () => {
      const s = await http<RolloutSummary>('GET', `${urls.rollout}/rollouts/${id}?nodes=true`);
      return ok(s) ? s : null;
    }, { timeoutMs: 60_000, intervalMs: 200 });
  const versions = (i: number) => stateOf(i).active.map((p) => `${p.manifest.name}@${p.manifest.version}`);

  it('installs v1 on both nodes', async () => {
    const first = await create('1.0.0');
    await until(first.rolloutId, (s) => s.status === 'completed', 'the first rollout to complete');
    expect([versions(1), versions(2)]).toEqual([['demo-api@1.0.0'], ['demo-api@1.0.0']]);
  });

  it('edge-2 not ready: the rollout aborts naming edge-2 and its process, both nodes end on v1, the webhook gets the failure', async () => {
    await writeFile(join(workDir, 'edge-2', 'not-ready'), 'flushing the write-ahead log');
    const second = await create('2.0.0');
    const done = await until(second.rolloutId, (s) => ['aborted', 'failed', 'paused', 'completed'].includes(s.status) && s.phases['committing'] === undefined, 'the rollout to end');
    expect(done.status).toBe('aborted');
    expect(done.failures).toEqual([{ nodeId: 'edge-2', code: 'NOT_READY', message: expect.stringContaining('demo-api@1.0.0: flushing the write-ahead log') }]);
    expect(done.nodePhases?.['edge-2']).toBe('failed');
    // edge-1 either never committed (edge-2 was the canary) or changed over and was regressed.
    expect(['accepted', 'regressed', 'regressing']).toContain(done.nodePhases?.['edge-1']);
    await waitFor('both nodes back on v1 with no changeover in flight', () => [1, 2].every((i) => versions(i).join() === 'demo-api@1.0.0' && stateOf(i).journal === null), { timeoutMs: 30_000, intervalMs: 100 });

    const failure = await waitFor('the node-failed webhook', () => delivered.find((d) => d.type === 'io.changeover.rollout.node-failed' && d.data['rolloutId'] === second.rolloutId), { timeoutMs: 30_000, intervalMs: 100 });
    expect(failure.data).toMatchObject({ nodeId: 'edge-2', code: 'NOT_READY', message: expect.stringContaining('demo-api@1.0.0') });
    await waitFor('the aborted webhook', () => delivered.some((d) => d.type === 'io.changeover.rollout.aborted' && d.data['rolloutId'] === second.rolloutId), { timeoutMs: 30_000, intervalMs: 100 });
  });
});

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { signManifest, type Module, type PackageManifest, type RolloutSummary } from '@changeover/contracts';
import { createTestDatabase, freePort, startNats, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import { demoKey } from './demo-fleet.js';
import { makeWorkDir, removeWorkDir, startProcess, type Started } from './demo-infra.js';

// Module selection by node characteristics (claim 3), end to end (after `npx tsc -b`): the registry,
// the rollout service and three real agents as separate processes, one package whose `infer-bin`
// module has a build per characteristic: Windows (listed first, so a selection ignoring the OS would
// take it), GPU (label gpu=true) and CPU (label gpu=false). Each agent must install and run its own
// build; a node with neither label matches no build and the rollout naming it is refused, typed and
// counted, with nothing installed anywhere. Relabelled, the same node gets the GPU build.

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const entry = (pkg: string) => join(root, pkg, 'dist/main.js');
const adminToken = randomBytes(32).toString('hex');
const key = demoKey();
const trustRoots = JSON.stringify({ [key.keyId]: key.publicKeyPem });

/** A build that runs until stopped; its text names its variant, so each build has its own digest. */
function build(variant: string, requires: Module['requires']): { module: Module; bytes: Buffer } {
  const bytes = Buffer.from(`'use strict';\n// infer-bin, ${variant} build\nprocess.stdout.write('infer-bin ${variant} running\\n');\nsetInterval(() => undefined, 60_000);\nprocess.on('SIGTERM', () => process.exit(0));\n`);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  return { bytes, module: { name: 'infer-bin', version: '1.0.0', processorType: 'any', size: bytes.length, digest, dependsOn: [], requires, run: { command: 'node', args: ['{module}'], env: {}, restartOnChange: false, stopTimeoutMs: 5000 } } };
}
const builds = { windows: build('windows', { os: ['windows'] }), gpu: build('gpu', { labels: { gpu: 'true' } }), cpu: build('cpu', { labels: { gpu: 'false' } }) };
const infer: PackageManifest = { name: 'infer', version: '1.0.0', description: 'one module, a build per node kind', modules: [builds.windows.module, builds.gpu.module, builds.cpu.module], requires: {}, provides: [], consumes: [] };
const hex = (digest: string) => digest.slice('sha256:'.length);

async function http<T>(method: string, url: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  return { status: res.status, body: (text && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text) as T };
}

/** The pids and command lines of live processes a node's agent started (its state directory in their environment). */
function moduleProcesses(stateDir: string): { processId: string; cmdline: string }[] {
  const out: { processId: string; cmdline: string }[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      if (!env.includes(`CHANGEOVER_STATE_DIR=${stateDir}`)) continue;
      if (readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z')) continue;
      const id = env.find((e) => e.startsWith('CHANGEOVER_PROCESS_ID='));
      if (id) out.push({ processId: id.slice('CHANGEOVER_PROCESS_ID='.length), cmdline: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ') });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

describe('each node installs and runs the build its characteristics select', () => {
  let nats: TestNats;
  let db: TestDatabase;
  let workDir = '';
  const started: Started[] = [];
  const agents = new Map<string, Started>();
  const urls = { registry: '', rollout: '' };
  const nodes = { 'sel-gpu': 'gpu=true', 'sel-cpu': 'gpu=false,zone=a', 'sel-bare': 'zone=b' } as const;
  const stateDir = (node: string) => join(workDir, node, 'state');
  const installed = (node: string) => {
    const path = join(stateDir(node), 'state.json');
    if (!existsSync(path)) return [];
    return (JSON.parse(readFileSync(path, 'utf8')) as { state: { active: { manifest: { name: string; version: string }; modules: { digest: string }[] }[] } }).state.active;
  };
  const storedBlobs = (node: string) => (existsSync(join(stateDir(node), 'modules')) ? readdirSync(join(stateDir(node), 'modules')).sort() : []);
  const startAgent = async (node: keyof typeof nodes, labels: string) => {
    const dir = join(workDir, node);
    await mkdir(dir, { recursive: true });
    const agent = await startProcess(`agent-${node}`, entry('services/node-agent'), [], {
      OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none', OTEL_LOGS_EXPORTER: 'none',
      NATS_URL: nats.url, NODE_ID: node, NODE_CLASS: 'sel', NODE_LABELS: labels, AGENT_STATE_DIR: stateDir(node), AGENT_TRUST_ROOTS: trustRoots, AGENT_HEARTBEAT_MS: '1000', AGENT_MIN_FREE_DISK_MB: '1', LOG_LEVEL: 'info',
    }, workDir, dir);
    agents.set(node, agent);
  };
  const refusals = async () => {
    const text = (await http<string>('GET', `${urls.rollout}/metrics`)).body;
    const line = text.split('\n').find((l) => l.startsWith('changeover_rollout_http_errors_total{') && l.includes('code="PROCESSOR_UNSUPPORTED"'));
    return line ? Number(line.split(' ').at(-1)) : 0;
  };
  const until = (id: string, ok: (s: RolloutSummary) => boolean, what: string) =>
    waitFor(what, async () => {
      const s = (await http<RolloutSummary>('GET', `${urls.rollout}/rollouts/${id}?nodes=true`)).body;
      return ok(s) ? s : null;
    }, { timeoutMs: 90_000, intervalMs: 200 });
  const runs = (node: string, variant: keyof typeof builds) => {
    const live = moduleProcesses(stateDir(node));
    return live.length === 1 && live[0]!.processId === 'infer-bin@1.0.0' && live[0]!.cmdline.includes(join(stateDir(node), 'modules', hex(builds[variant].module.digest)));
  };

  beforeAll(async () => {
    for (const pkg of ['services/registry', 'services/rollout', 'services/node-agent']) {
      if (!existsSync(entry(pkg))) throw new Error(`build first: npx tsc -b ${pkg}`);
    }
    [nats, db] = await Promise.all([startNats(), createTestDatabase('selection')]);
    workDir = await makeWorkDir();
    const [registryPort, rolloutPort] = await Promise.all([freePort(), freePort()]);
    const common = { OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none', OTEL_LOGS_EXPORTER: 'none', DATABASE_URL: db.url, NATS_URL: nats.url, LOG_LEVEL: 'info', CHANGEOVER_ADMIN_TOKEN: adminToken };
    urls.registry = `http://127.0.0.1:${registryPort}`;
    urls.rollout = `http://127.0.0.1:${rolloutPort}`;
    started.push(await startProcess('registry', entry('services/registry'), [], { ...common, REGISTRY_HTTP_PORT: String(registryPort), REGISTRY_TRUST_ROOTS: trustRoots }, workDir));
    await waitFor('the registry', () => fetch(`${urls.registry}/health/ready`).then((r) => r.ok, () => false), { timeoutMs: 30_000, intervalMs: 100 });
    started.push(await startProcess('rollout', entry('services/rollout'), [], { ...common, ROLLOUT_HTTP_PORT: String(rolloutPort), ROLLOUT_RELAY: 'false', ROLLOUT_LEASE_MS: '2000' }, workDir));
    await waitFor('the rollout service', () => fetch(`${urls.rollout}/health/ready`).then((r) => r.ok, () => false), { timeoutMs: 30_000, intervalMs: 100 });
    for (const [node, labels] of Object.entries(nodes)) await startAgent(node as keyof typeof nodes, labels);
    await waitFor('3 agents to say hello', async () => (await http<{ nodes: unknown[] }>('GET', `${urls.registry}/nodes?status=active`)).body.nodes.length === 3, { timeoutMs: 30_000, intervalMs: 200 });
    const published = await http('POST', `${urls.registry}/packages`, { package: signManifest(infer, key.privateKeyPem, key.keyId), blobs: Object.fromEntries(Object.values(builds).map((b) => [b.module.digest, b.bytes.toString('base64')])) });
    if (published.status !== 201) throw new Error(`publish answered ${published.status}: ${JSON.stringify(published.body)}`);
  }, 120_000);

  afterAll(async () => {
    for (const a of agents.values()) await a.stop().catch(() => undefined);
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
    await db?.drop();
    await nats?.stop();
    if (workDir && !process.env['KEEP_LOGS']) await removeWorkDir(workDir);
  });

  const create = (id: string, target: { classes: string[] } | { nodes: string[] }) =>
    http<RolloutSummary & { code?: string; message?: string; details?: { nodes: string[]; unsupported: { nodeId: string; package: string; reason: string }[] } }>('POST', `${urls.rollout}/rollouts`, { rolloutId: id, update: { description: id, targets: [{ ...target, packages: [{ name: 'infer', version: '1.0.0' }] }] }, policy: { voteTimeoutMs: 30_000, changeoverTimeoutMs: 60_000 } });

  it('refuses a rollout over the class that holds a node no build fits: PROCESSOR_UNSUPPORTED naming it and why, counted, nothing installed', async () => {
    const before = await refusals();
    const r = await create('sel-class', { classes: ['sel'] });
    expect(r.status).toBe(422);
    expect(r.body).toMatchObject({ code: 'PROCESSOR_UNSUPPORTED', message: expect.stringContaining('sel-bare') });
    // The host's real OS (linux) and the node's labels, against what each build needs.
    const why = 'module infer-bin: needs os windows, node has linux; or needs label gpu=true; or needs label gpu=false';
    expect(r.body.message).toContain(why);
    expect(r.body.details?.nodes).toEqual(['sel-bare']);
    expect(r.body.details?.unsupported).toEqual([{ nodeId: 'sel-bare', package: 'infer@1.0.0', processorType: expect.any(String), reason: why }]);
    expect(await refusals()).toBe(before + 1);
    // Atomic: no rollout was created, so no node was even asked.
    expect((await http('GET', `${urls.rollout}/rollouts/sel-class`)).status).toBe(404);
    for (const node of Object.keys(nodes)) expect(installed(node)).toEqual([]);
  });

  it('installs and runs on each fitting node exactly its own build, never the others', async () => {
    const r = await create('sel-fitting', { nodes: ['sel-gpu', 'sel-cpu'] });
    expect(r.status).toBe(201);
    const done = await until('sel-fitting', (s) => ['completed', 'failed', 'aborted', 'blocked'].includes(s.status), 'the rollout to end');
    expect(done.status).toBe('completed');
    for (const [node, variant] of [['sel-gpu', 'gpu'], ['sel-cpu', 'cpu']] as const) {
      const active = installed(node);
      expect(active.map((p) => `${p.manifest.name}@${p.manifest.version}`)).toEqual(['infer@1.0.0']);
      expect(active[0]!.modules.map((m) => m.digest)).toEqual([builds[variant].module.digest]);
      // On disk only its build, and its file has the signed digest; running: that file.
      expect(storedBlobs(node)).toEqual([hex(builds[variant].module.digest)]);
      const file = readFileSync(join(stateDir(node), 'modules', hex(builds[variant].module.digest)));
      expect(`sha256:${createHash('sha256').update(file).digest('hex')}`).toBe(builds[variant].module.digest);
      await waitFor(`${node} running its ${variant} build`, () => runs(node, variant), { timeoutMs: 15_000, intervalMs: 100 });
    }
    expect(installed('sel-bare')).toEqual([]);
    expect(moduleProcesses(stateDir('sel-bare'))).toEqual([]);
  });

  it('gives the node the GPU build once it says hello with gpu=true', async () => {
    await agents.get('sel-bare')!.stop();
    await startAgent('sel-bare', 'gpu=true,zone=b');
    await waitFor('the registry to hold the new labels', async () => {
      const n = await http<{ status: string; characteristics?: { labels: Record<string, string> } }>('GET', `${urls.registry}/nodes/sel-bare`);
      return n.body.status === 'active' && n.body.characteristics?.labels['gpu'] === 'true';
    }, { timeoutMs: 30_000, intervalMs: 200 });
    const r = await create('sel-relabelled', { classes: ['sel'] });
    expect(r.status).toBe(201);
    const done = await until('sel-relabelled', (s) => ['completed', 'failed', 'aborted', 'blocked'].includes(s.status), 'the class rollout to end');
    expect(done.status).toBe('completed');
    expect(installed('sel-bare')[0]!.modules.map((m) => m.digest)).toEqual([builds.gpu.module.digest]);
    expect(storedBlobs('sel-bare')).toEqual([hex(builds.gpu.module.digest)]);
    await waitFor('sel-bare running the gpu build', () => runs('sel-bare', 'gpu'), { timeoutMs: 15_000, intervalMs: 100 });
    // The nodes that had their build keep running it.
    expect(runs('sel-gpu', 'gpu') && runs('sel-cpu', 'cpu')).toBe(true);
  });
});

import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createTestDatabase, freePort, startNats, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import type { ClusterVersionStatus, RolloutSummary } from '@changeover/contracts';
import { healthy, http, kill9, REPO_ROOT, startService, type Child } from '../testing/processes.js';
import { fetchText, publishPackage, traffic } from '../testing/module-probe.js';

// An agent upgrade leaves the node's module processes running: the old agent hands them (and their
// listening sockets, through the launcher) to the new version, which adopts them. A TCP service
// answers every request of a loop over loopback throughout, keeps its pid, and a later changeover
// of it under the new agent is as seamless as before.

jest.setTimeout(240_000);

const LAUNCHER = join(REPO_ROOT, 'services/node-agent/dist/launcher.js');
const GREETER = readFileSync(join(REPO_ROOT, 'services/node-agent/src/fixtures/greeter.cjs'), 'utf8');
const CONSUMER = Buffer.from(readFileSync(join(REPO_ROOT, 'services/node-agent/src/fixtures/consumer.cjs'), 'utf8'));
const AGENT_SDK = join(REPO_ROOT, 'libs/agent-sdk/dist/index.js');

let db: TestDatabase;
let nats: TestNats;
let dir: string;
let base: string;
let registryBase: string;
let port: number;
const children: Child[] = [];
let launcher: ChildProcess | undefined;

const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const status = async () => (await http<ClusterVersionStatus>('GET', `${base}/cluster-version`)).body;

function greeter(version: string, code: string, api: string): { manifest: Record<string, unknown>; blob: Buffer } {
  const blob = Buffer.from(code);
  const run = { command: 'node', args: ['{module}'], env: {}, listen: { port, host: '127.0.0.1' }, healthCheck: { type: 'http', path: '/health', timeoutMs: 2000 }, restartOnChange: false, stopTimeoutMs: 10_000 };
  const manifest = { name: 'greeter', version, description: 'greeter', modules: [{ name: 'greeter-svc', version, processorType: 'any', size: blob.length, digest: digestOf(blob), dependsOn: [], requires: {}, run }], requires: {}, provides: [`greeter-api@${api}`], consumes: [] };
  return { manifest, blob };
}

async function rollout(rolloutId: string, packages: { name: string; version: string }[]): Promise<void> {
  const created = await http('POST', `${base}/rollouts`, {
    rolloutId,
    update: { description: rolloutId, targets: [{ nodes: ['u1'], packages }] },
    policy: { maxConcurrent: 1, waves: { canary: 1, size: 1, successThreshold: 1 }, voteTimeoutMs: 20_000, changeoverTimeoutMs: 60_000 },
  });
  expect(created.status).toBe(201);
  await waitFor(`rollout ${rolloutId} completed`, async () => {
    const s = (await http<RolloutSummary>('GET', `${base}/rollouts/${rolloutId}`)).body;
    if (['failed', 'aborted', 'cancelled', 'blocked'].includes(s.status)) throw new Error(`rollout ${s.status}: ${JSON.stringify(s.stuck ?? s.failures ?? s.vetoes)}`);
    return s.status === 'completed';
  }, { timeoutMs: 90_000, intervalMs: 300 });
}

const pidOf = (processId: string) => (JSON.parse(readFileSync(join(dir, 'u1', 'run', `${processId}.json`), 'utf8')) as { pid: number }).pid;
const changes = () => {
  try {
    return readFileSync(join(dir, 'changes.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { rolloutId: string }).rolloutId);
  } catch {
    return [];
  }
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'changeover-agent-adopt-'));
  [db, nats] = await Promise.all([createTestDatabase('agent_adopt'), startNats()]);
  const [registryPort, rolloutPort] = [await freePort(), await freePort()];
  port = await freePort();
  registryBase = `http://127.0.0.1:${registryPort}`;
  base = `http://127.0.0.1:${rolloutPort}`;
  children.push(startService('registry', 'services/registry', [], { DATABASE_URL: db.url, NATS_URL: nats.url, REGISTRY_HTTP_PORT: String(registryPort), REGISTRY_HTTP_HOST: '127.0.0.1', REGISTRY_RELAY: 'false', REGISTRY_STALE_AFTER_MS: '10000', LOG_LEVEL: 'warn' }, dir));
  await healthy(registryBase, 'the registry');
  children.push(startService('rollout', 'services/rollout', [], { DATABASE_URL: db.url, NATS_URL: nats.url, ROLLOUT_HTTP_PORT: String(rolloutPort), ROLLOUT_HTTP_HOST: '127.0.0.1', ROLLOUT_INSTANCE_ID: 'agent-adopt', ROLLOUT_VALIDATE_TIMEOUT_MS: '1000', LOG_LEVEL: 'warn' }, dir));
  await healthy(base, 'the rollout service');
  const out = openSync(join(dir, 'launcher-u1.log'), 'a');
  launcher = spawn(process.execPath, [LAUNCHER], {
    env: { PATH: process.env['PATH'] ?? '', OTEL_SDK_DISABLED: 'true', NATS_URL: nats.url, NODE_ID: 'u1', NODE_CLASS: 'ad', AGENT_STATE_DIR: join(dir, 'u1'), AGENT_VERSION: '1.0.0', AGENT_HEARTBEAT_MS: '300', AGENT_MIN_FREE_DISK_MB: '1', LOG_LEVEL: 'info' },
    stdio: ['ignore', out, out],
    detached: true,
  });
  await waitFor('agent 1.0.0 registered', async () => (await status()).nodes?.some((n) => n.nodeId === 'u1' && n.status === 'active' && n.agentVersion === '1.0.0'), { timeoutMs: 60_000, intervalMs: 200 });
}, 120_000);

afterAll(async () => {
  try {
    if (launcher?.pid) process.kill(-launcher.pid, 'SIGKILL');
  } catch {
    // already gone
  }
  // Module processes run in their own process groups: found by the state-dir marker in their environment.
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`CHANGEOVER_STATE_DIR=${join(dir, 'u1')}`)) process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone meanwhile, or not ours
    }
  }
  for (const c of children) await kill9(c);
  await nats?.stop();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('agent upgrade with running modules', () => {
  it('keeps a TCP service answering every request through the agent upgrade, and the new agent adopts it', async () => {
    const v1 = greeter('1.0.0', GREETER, '1.0.0');
    await publishPackage(registryBase, v1.manifest, v1.blob);
    // A consumer linking the SDK: it is told of every changeover of the greeter through the local API.
    const clientRun = { command: 'node', args: ['{module}'], env: { AGENT_SDK, CHANGES_FILE: join(dir, 'changes.jsonl'), CONSUMER_VETO: 'none', GREETER_URL: `http://127.0.0.1:${port}` }, restartOnChange: false, stopTimeoutMs: 5000 };
    await publishPackage(registryBase, { name: 'client', version: '1.0.0', description: 'consumer', modules: [{ name: 'client-proc', version: '1.0.0', processorType: 'any', size: CONSUMER.length, digest: digestOf(CONSUMER), dependsOn: ['greeter-svc'], requires: {}, run: clientRun }], requires: {}, provides: [], consumes: ['greeter-api@^1'] }, CONSUMER);
    await rollout('greeter-1', [{ name: 'greeter', version: '1.0.0' }, { name: 'client', version: '1.0.0' }]);
    await waitFor('v1 serving', async () => (await fetchText(port, '/version').catch(() => '')) === 'v1');
    const pidBefore = pidOf('greeter-svc@1.0.0');
    const clientPid = pidOf('client-proc@1.0.0');

    const shim = Buffer.from(`'use strict';\nprocess.env.AGENT_VERSION = '2.0.0';\nimport(${JSON.stringify(join(REPO_ROOT, 'services/node-agent/dist/main.js'))});\n`);
    await publishPackage(registryBase, { name: 'changeover-agent', version: '2.0.0', description: 'node agent', modules: [{ name: 'node-agent', version: '2.0.0', processorType: 'any', size: shim.length, digest: digestOf(shim), dependsOn: [], requires: {} }], requires: {}, provides: [], consumes: [] }, shim);
    const t = traffic(port);
    await waitFor('traffic flowing', () => t.stats.ok > 20);
    await rollout('agent-2', [{ name: 'greeter', version: '1.0.0' }, { name: 'client', version: '1.0.0' }, { name: 'changeover-agent', version: '2.0.0' }]);
    await waitFor('agent 2.0.0 active', async () => (await status()).nodes.some((n) => n.nodeId === 'u1' && n.status === 'active' && n.agentVersion === '2.0.0'), { timeoutMs: 30_000, intervalMs: 200 });
    const during = { ...t.stats };
    await t.stop();
    expect(during.errors).toEqual([]);
    expect(during.failed).toBe(0);
    expect(during.ok).toBeGreaterThan(50);
    // The same process, adopted by the new agent (its record rewritten, its credential accepted again).
    expect(pidOf('greeter-svc@1.0.0')).toBe(pidBefore);
    expect(pidOf('client-proc@1.0.0')).toBe(clientPid);
    expect(readFileSync(join(dir, 'launcher-u1.log'), 'utf8')).toContain('adopted a process the previous agent version started');

    // The consumer's SDK finds the agent again at the same socket and registers with the credential it has.
    const registrations = () => readFileSync(join(dir, 'launcher-u1.log'), 'utf8').split('\n').filter((l) => l.includes('"msg":"process registered"') && l.includes('client-proc@1.0.0')).length;
    await waitFor('the consumer registered with the new agent', () => registrations() === 2, { timeoutMs: 30_000 });

    // A changeover under the new agent: the handed-over socket is shared by old and new, nothing is refused.
    const v2 = greeter('2.0.0', GREETER.replace("const VERSION = 'v1';", "const VERSION = 'v2';"), '1.1.0');
    await publishPackage(registryBase, v2.manifest, v2.blob);
    const t2 = traffic(port);
    await waitFor('traffic flowing again', () => t2.stats.ok > 20);
    await rollout('greeter-2', [{ name: 'greeter', version: '2.0.0' }, { name: 'client', version: '1.0.0' }, { name: 'changeover-agent', version: '2.0.0' }]);
    await waitFor('v2 serving', async () => (await fetchText(port, '/version').catch(() => '')) === 'v2');
    await t2.stop();
    expect(t2.stats.errors).toEqual([]);
    expect(t2.stats.failed).toBe(0);
    // The adopted consumer answers the new agent's events: it was told of greeter-2.
    await waitFor('the consumer told of greeter-2', () => changes().includes('greeter-2'), { timeoutMs: 30_000 });
    expect(pidOf('client-proc@1.0.0')).toBe(clientPid);
  });
});

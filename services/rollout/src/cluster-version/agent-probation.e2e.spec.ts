import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { EventStore } from '@changeover/event-store';
import { createTestDatabase, freePort, startNats, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import type { ClusterVersionStatus, RolloutSummary } from '@changeover/contracts';
import { healthy, http, kill9, REPO_ROOT, startService, type Child } from '../testing/processes.js';
import { fetchText, publishPackage, traffic } from '../testing/module-probe.js';

// A new agent version that comes up and crashes a few seconds later, inside the launcher's probation:
// the launcher kills nothing but it, starts the version that ran before, which adopts the module
// processes again (a TCP service answers every request of a loop throughout and keeps its pid),
// puts the node back on its previous set and reports the typed failure the rollout records.

jest.setTimeout(240_000);

const LAUNCHER = join(REPO_ROOT, 'services/node-agent/dist/launcher.js');
const MAIN = join(REPO_ROOT, 'services/node-agent/dist/main.js');
const GREETER = Buffer.from(readFileSync(join(REPO_ROOT, 'services/node-agent/src/fixtures/greeter.cjs'), 'utf8'));
const PROBATION_MS = 30_000;

let db: TestDatabase;
let nats: TestNats;
let dir: string;
let base: string;
let registryBase: string;
let port: number;
const children: Child[] = [];
let launcher: ChildProcess | undefined;
let launcherLog = '';

const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const status = async () => (await http<ClusterVersionStatus>('GET', `${base}/cluster-version`)).body;
const agentVersion = async () => (await status()).nodes?.find((n) => n.nodeId === 'p1' && n.status === 'active')?.agentVersion;
const pidOf = (processId: string) => (JSON.parse(readFileSync(join(dir, 'p1', 'run', `${processId}.json`), 'utf8')) as { pid: number }).pid;
const logLines = (text: string) => readFileSync(launcherLog, 'utf8').split('\n').filter((l) => l.includes(text)).length;

/** Pids of processes whose command line names `file`. */
function running(file: string): string[] {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').includes(file);
    } catch {
      return false;
    }
  });
}

async function create(rolloutId: string, packages: { name: string; version: string }[]): Promise<void> {
  const created = await http('POST', `${base}/rollouts`, {
    rolloutId,
    update: { description: rolloutId, targets: [{ nodes: ['p1'], packages }] },
    policy: { maxConcurrent: 1, waves: { canary: 1, size: 1, successThreshold: 1 }, voteTimeoutMs: 20_000, changeoverTimeoutMs: 150_000 },
  });
  expect(created.status).toBe(201);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'changeover-agent-probation-'));
  [db, nats] = await Promise.all([createTestDatabase('agent_probation'), startNats()]);
  const [registryPort, rolloutPort, healthPort] = [await freePort(), await freePort(), await freePort()];
  port = await freePort();
  registryBase = `http://127.0.0.1:${registryPort}`;
  base = `http://127.0.0.1:${rolloutPort}`;
  children.push(startService('registry', 'services/registry', [], { DATABASE_URL: db.url, NATS_URL: nats.url, REGISTRY_HTTP_PORT: String(registryPort), REGISTRY_HTTP_HOST: '127.0.0.1', REGISTRY_RELAY: 'false', REGISTRY_STALE_AFTER_MS: '10000', LOG_LEVEL: 'warn' }, dir));
  await healthy(registryBase, 'the registry');
  children.push(startService('rollout', 'services/rollout', [], { DATABASE_URL: db.url, NATS_URL: nats.url, ROLLOUT_HTTP_PORT: String(rolloutPort), ROLLOUT_HTTP_HOST: '127.0.0.1', ROLLOUT_INSTANCE_ID: 'agent-probation', ROLLOUT_VALIDATE_TIMEOUT_MS: '1000', LOG_LEVEL: 'warn' }, dir));
  await healthy(base, 'the rollout service');
  launcherLog = join(dir, 'launcher-p1.log');
  const out = openSync(launcherLog, 'a');
  launcher = spawn(process.execPath, [LAUNCHER], {
    env: {
      PATH: process.env['PATH'] ?? '',
      OTEL_SDK_DISABLED: 'true',
      NATS_URL: nats.url,
      NODE_ID: 'p1',
      NODE_CLASS: 'pb',
      AGENT_STATE_DIR: join(dir, 'p1'),
      AGENT_VERSION: '1.0.0',
      AGENT_HEARTBEAT_MS: '300',
      AGENT_MIN_FREE_DISK_MB: '1',
      AGENT_HEALTH_PORT: String(healthPort),
      AGENT_UPGRADE_PROBATION_MS: String(PROBATION_MS),
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', out, out],
    detached: true,
  });
  await waitFor('agent 1.0.0 registered', async () => (await agentVersion()) === '1.0.0', { timeoutMs: 60_000, intervalMs: 200 });
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
      if (readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`CHANGEOVER_STATE_DIR=${join(dir, 'p1')}`)) process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone meanwhile, or not ours
    }
  }
  for (const c of children) await kill9(c);
  await nats?.stop();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('a new agent version that crashes during its probation', () => {
  it('is rolled back: the old agent adopts the running module, no request fails, the rollout records AGENT_UPGRADE_PROBATION_FAILED', async () => {
    const run = { command: 'node', args: ['{module}'], env: {}, listen: { port, host: '127.0.0.1' }, healthCheck: { type: 'http', path: '/health', timeoutMs: 2000 }, restartOnChange: false, stopTimeoutMs: 10_000 };
    const greeter = { name: 'greeter', version: '1.0.0', description: 'greeter', modules: [{ name: 'greeter-svc', version: '1.0.0', processorType: 'any', size: GREETER.length, digest: digestOf(GREETER), dependsOn: [], requires: {}, run }], requires: {}, provides: [], consumes: [] };
    await publishPackage(registryBase, greeter, GREETER);
    await create('greeter-1', [{ name: 'greeter', version: '1.0.0' }]);
    await waitFor('greeter-1 completed', async () => (await http<RolloutSummary>('GET', `${base}/rollouts/greeter-1`)).body.status === 'completed', { timeoutMs: 90_000, intervalMs: 300 });
    await waitFor('v1 serving', async () => (await fetchText(port, '/version').catch(() => '')) === 'v1');
    const greeterPid = pidOf('greeter-svc@1.0.0');

    // "Version 2.0.0" is the real agent, which exits with 70 three seconds after it wrote its ready file.
    const crashing = Buffer.from(
      [
        `'use strict';`,
        `process.env.AGENT_VERSION = '2.0.0';`,
        `const { readFileSync } = require('node:fs');`,
        `const ready = require('node:path').join(process.env.AGENT_STATE_DIR, 'agent.ready');`,
        `const t = setInterval(() => { let pid = ''; try { pid = readFileSync(ready, 'utf8').trim(); } catch {} if (pid === String(process.pid)) { clearInterval(t); setTimeout(() => process.exit(70), 3000); } }, 100);`,
        `import(${JSON.stringify(MAIN)});`,
        '',
      ].join('\n'),
    );
    await publishPackage(registryBase, { name: 'changeover-agent', version: '2.0.0', description: 'node agent', modules: [{ name: 'node-agent', version: '2.0.0', processorType: 'any', size: crashing.length, digest: digestOf(crashing), dependsOn: [], requires: {} }], requires: {}, provides: [], consumes: [] }, crashing);
    const crashingFile = join(dir, 'p1', 'modules', digestOf(crashing).replace(/^sha256:/, ''));

    const t = traffic(port, { max: 20_000, paceMs: 5 });
    await waitFor('traffic flowing', () => t.stats.ok > 20);
    await create('agent-2-crashing', [{ name: 'greeter', version: '1.0.0' }, { name: 'changeover-agent', version: '2.0.0' }]);
    // The new version comes up (it reports 2.0.0 in its heartbeats) and adopts the greeter …
    await waitFor('agent 2.0.0 up', async () => (await agentVersion()) === '2.0.0', { timeoutMs: 60_000, intervalMs: 100 });
    expect(running(crashingFile)).toHaveLength(1);
    // … then crashes: its completion was held for the probation, so the rollout never counts the node done.
    const ended = await waitFor('rollout ended', async () => {
      const s = (await http<RolloutSummary>('GET', `${base}/rollouts/agent-2-crashing`)).body;
      if (s.status === 'completed') throw new Error('the rollout completed with an agent that crashed in its probation');
      return ['failed', 'aborted', 'blocked', 'paused'].includes(s.status) ? s : undefined;
    }, { timeoutMs: 90_000, intervalMs: 300 });
    expect(ended.failures).toEqual([expect.objectContaining({ nodeId: 'p1', code: 'AGENT_UPGRADE_PROBATION_FAILED', message: expect.stringContaining('failed during its probation (exited with code 70') })]);
    expect(running(crashingFile)).toEqual([]);
    await waitFor('agent 1.0.0 active again', async () => (await agentVersion()) === '1.0.0', { timeoutMs: 30_000, intervalMs: 200 });
    // The old agent adopted the greeter the crashed one had adopted: the same process, still serving.
    await waitFor('the greeter adopted twice', () => logLines('adopted a process the previous agent version started') >= 2, { timeoutMs: 30_000 });
    expect(pidOf('greeter-svc@1.0.0')).toBe(greeterPid);
    const okAtRollback = t.stats.ok;
    await waitFor('traffic after the rollback', () => t.stats.ok > okAtRollback + 50, { timeoutMs: 30_000 });
    await t.stop();
    expect(t.stats.errors).toEqual([]);
    expect(t.stats.failed).toBe(0);
    expect(await fetchText(port, '/version')).toBe('v1');

    // The typed failure is the rollout's event, and the node's store no longer names 2.0.0 active.
    const store = await EventStore.connect({ url: db.url });
    const failed = (await store.readStream('rollout-agent-2-crashing')).filter((e) => e.type === 'rollout.node-failed');
    await store.close();
    expect(failed.map((e) => (e.data as { nodeId: string; code: string }))).toEqual([expect.objectContaining({ nodeId: 'p1', code: 'AGENT_UPGRADE_PROBATION_FAILED' })]);
    const state = JSON.parse(readFileSync(join(dir, 'p1', 'state.json'), 'utf8')) as { state: { active: { manifest: { name: string; version: string } }[] } };
    expect(state.state.active.map((p) => `${p.manifest.name}@${p.manifest.version}`)).toEqual(['greeter@1.0.0']);
    expect(existsSync(join(dir, 'p1', 'agent-rollback.json'))).toBe(false);
    expect(logLines('new agent version failed its probation: rolling back')).toBe(1);
    // The rollout re-sent its commit when the old agent said hello: answered with the failure, it did not restart into 2.0.0.
    expect(logLines('agent package installed: members leave, the agent restarts into it')).toBe(1);
    expect(launcher!.exitCode).toBeNull();
  });

  it('rolls back a version that is up but whose health fails during its probation, and the module keeps serving', async () => {
    const greeterPid = pidOf('greeter-svc@1.0.0');
    // "Version 3.0.0" says it is up (its pid in the ready file) but never answers /health/ready.
    const mute = Buffer.from(`'use strict';\nrequire('node:fs').writeFileSync(require('node:path').join(process.env.AGENT_STATE_DIR, 'agent.ready'), String(process.pid));\nsetInterval(() => undefined, 1000);\n`);
    await publishPackage(registryBase, { name: 'changeover-agent', version: '3.0.0', description: 'node agent', modules: [{ name: 'node-agent', version: '3.0.0', processorType: 'any', size: mute.length, digest: digestOf(mute), dependsOn: [], requires: {} }], requires: {}, provides: [], consumes: [] }, mute);
    const muteFile = join(dir, 'p1', 'modules', digestOf(mute).replace(/^sha256:/, ''));
    const t = traffic(port, { max: 20_000, paceMs: 5 });
    await waitFor('traffic flowing', () => t.stats.ok > 20);
    await create('agent-3-unhealthy', [{ name: 'greeter', version: '1.0.0' }, { name: 'changeover-agent', version: '3.0.0' }]);
    await waitFor('the mute version started', () => running(muteFile).length === 1, { timeoutMs: 60_000 });
    const ended = await waitFor('rollout ended', async () => {
      const s = (await http<RolloutSummary>('GET', `${base}/rollouts/agent-3-unhealthy`)).body;
      if (s.status === 'completed') throw new Error('the rollout completed with an unhealthy agent');
      return ['failed', 'aborted', 'blocked', 'paused'].includes(s.status) ? s : undefined;
    }, { timeoutMs: 90_000, intervalMs: 300 });
    expect(ended.failures).toEqual([expect.objectContaining({ nodeId: 'p1', code: 'AGENT_UPGRADE_PROBATION_FAILED', message: expect.stringContaining('unhealthy during its probation: /health/ready') })]);
    expect(running(muteFile)).toEqual([]);
    await waitFor('agent 1.0.0 active again', async () => (await agentVersion()) === '1.0.0', { timeoutMs: 30_000, intervalMs: 200 });
    // The mute version adopted nothing: the launcher handed the processes back, and the old agent adopted them.
    await waitFor('the greeter adopted again', () => logLines('adopted a process the previous agent version started') >= 3, { timeoutMs: 30_000 });
    expect(pidOf('greeter-svc@1.0.0')).toBe(greeterPid);
    const okAtRollback = t.stats.ok;
    await waitFor('traffic after the rollback', () => t.stats.ok > okAtRollback + 50, { timeoutMs: 30_000 });
    await t.stop();
    expect(t.stats.errors).toEqual([]);
    expect(t.stats.failed).toBe(0);
    expect(logLines('new agent version failed its probation: rolling back')).toBe(2);
    expect(logLines('agent package installed: members leave, the agent restarts into it')).toBe(2);
    expect(launcher!.exitCode).toBeNull();
  });
});

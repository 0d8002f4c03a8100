import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createTestDatabase, freePort, startNats, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import type { ClusterVersionStatus, RolloutSummary } from '@changeover/contracts';
import { healthy, http, kill9, REPO_ROOT, startService, type Child } from '../testing/processes.js';
import { publishPackage } from '../testing/module-probe.js';

// A new agent version that never comes up: the launcher kills it at its deadline and starts the
// version that ran before, which reports the node's part of the upgrade failed (AGENT_UPGRADE_FAILED)
// and runs its previous set again.

jest.setTimeout(180_000);

const LAUNCHER = join(REPO_ROOT, 'services/node-agent/dist/launcher.js');

let db: TestDatabase;
let nats: TestNats;
let dir: string;
let base: string;
let registryBase: string;
const children: Child[] = [];
let launcher: ChildProcess | undefined;
let launcherLog = '';

const status = async () => (await http<ClusterVersionStatus>('GET', `${base}/cluster-version`)).body;

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

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'changeover-agent-rollback-'));
  [db, nats] = await Promise.all([createTestDatabase('agent_rollback'), startNats()]);
  const [registryPort, rolloutPort] = [await freePort(), await freePort()];
  registryBase = `http://127.0.0.1:${registryPort}`;
  base = `http://127.0.0.1:${rolloutPort}`;
  children.push(startService('registry', 'services/registry', [], { DATABASE_URL: db.url, NATS_URL: nats.url, REGISTRY_HTTP_PORT: String(registryPort), REGISTRY_HTTP_HOST: '127.0.0.1', REGISTRY_RELAY: 'false', REGISTRY_STALE_AFTER_MS: '10000', LOG_LEVEL: 'warn' }, dir));
  await healthy(registryBase, 'the registry');
  children.push(startService('rollout', 'services/rollout', [], { DATABASE_URL: db.url, NATS_URL: nats.url, ROLLOUT_HTTP_PORT: String(rolloutPort), ROLLOUT_HTTP_HOST: '127.0.0.1', ROLLOUT_INSTANCE_ID: 'agent-rollback', ROLLOUT_VALIDATE_TIMEOUT_MS: '1000', LOG_LEVEL: 'warn' }, dir));
  await healthy(base, 'the rollout service');
  launcherLog = join(dir, 'launcher-r1.log');
  const out = openSync(launcherLog, 'a');
  launcher = spawn(process.execPath, [LAUNCHER], {
    env: { PATH: process.env['PATH'] ?? '', OTEL_SDK_DISABLED: 'true', NATS_URL: nats.url, NODE_ID: 'r1', NODE_CLASS: 'rb', AGENT_STATE_DIR: join(dir, 'r1'), AGENT_VERSION: '1.0.0', AGENT_HEARTBEAT_MS: '300', AGENT_MIN_FREE_DISK_MB: '1', AGENT_UPGRADE_START_TIMEOUT_MS: '3000', LOG_LEVEL: 'warn' },
    stdio: ['ignore', out, out],
    detached: true,
  });
  await waitFor('agent 1.0.0 registered', async () => (await status()).nodes?.some((n) => n.nodeId === 'r1' && n.status === 'active' && n.agentVersion === '1.0.0'), { timeoutMs: 60_000, intervalMs: 200 });
}, 120_000);

afterAll(async () => {
  try {
    if (launcher?.pid) process.kill(-launcher.pid, 'SIGKILL');
  } catch {
    // already gone
  }
  for (const c of children) await kill9(c);
  await nats?.stop();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('a failing new agent version', () => {
  it('is rolled back by the launcher; the node reports AGENT_UPGRADE_FAILED and runs 1.0.0 on its previous set', async () => {
    // "Version 2.0.0" never connects nor writes its ready file.
    const broken = Buffer.from(`'use strict';\nsetInterval(() => undefined, 1000);\n`);
    const digest = `sha256:${createHash('sha256').update(broken).digest('hex')}`;
    const manifest = { name: 'changeover-agent', version: '2.0.0', description: 'node agent', modules: [{ name: 'node-agent', version: '2.0.0', processorType: 'any', size: broken.length, digest, dependsOn: [], requires: {} }], requires: {}, provides: [], consumes: [] };
    await publishPackage(registryBase, manifest, broken);
    const brokenFile = join(dir, 'r1', 'modules', digest.replace(/^sha256:/, ''));

    const created = await http<RolloutSummary>('POST', `${base}/rollouts`, {
      rolloutId: 'agent-2-broken',
      update: { description: 'node agent 2.0.0 (broken)', targets: [{ nodes: ['r1'], packages: [{ name: 'changeover-agent', version: '2.0.0' }] }] },
      policy: { maxConcurrent: 1, waves: { canary: 1, size: 1, successThreshold: 1 }, voteTimeoutMs: 20_000, changeoverTimeoutMs: 60_000 },
    });
    expect(created.status).toBe(201);
    // The launcher started the broken version (its module file is running) …
    await waitFor('the broken version started', () => running(brokenFile).length === 1, { timeoutMs: 60_000 });
    const ended = await waitFor('rollout ended', async () => {
      const s = (await http<RolloutSummary>('GET', `${base}/rollouts/agent-2-broken`)).body;
      if (s.status === 'completed') throw new Error('the rollout completed with an agent that never came up');
      return ['failed', 'aborted', 'blocked', 'paused'].includes(s.status) ? s : undefined;
    }, { timeoutMs: 90_000, intervalMs: 300 });
    expect(ended.failures).toEqual([expect.objectContaining({ nodeId: 'r1', code: 'AGENT_UPGRADE_FAILED', message: expect.stringContaining('not up within 3000 ms') })]);
    // … and killed it; the node runs 1.0.0 again and its store no longer names 2.0.0 active.
    expect(running(brokenFile)).toEqual([]);
    await waitFor('agent 1.0.0 active again', async () => (await status()).nodes.some((n) => n.nodeId === 'r1' && n.status === 'active' && n.agentVersion === '1.0.0'), { timeoutMs: 30_000, intervalMs: 200 });
    const state = JSON.parse(readFileSync(join(dir, 'r1', 'state.json'), 'utf8')) as { state: { active: { manifest: { name: string; version: string } }[] } };
    expect(state.state.active.map((p) => `${p.manifest.name}@${p.manifest.version}`)).not.toContain('changeover-agent@2.0.0');
    expect(existsSync(join(dir, 'r1', 'agent-rollback.json'))).toBe(false);
    expect(readFileSync(launcherLog, 'utf8')).toContain('new agent version did not come up: rolling back');
    expect(launcher!.exitCode).toBeNull();
  });
});

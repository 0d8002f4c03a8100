import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { freePort, startNats, waitFor, type TestNats } from '@changeover/test-kit';
import { cleanUpAgents, FakeOrchestrator, putBlobs, spawnAgent } from '../testing/agent-harness.js';
import { greeterPackages } from '../testing/greeter-packages.js';

function version(port: number): Promise<string> {
  return new Promise((resolve) => {
    get({ host: '127.0.0.1', port, path: '/version', agent: false, timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    }).on('error', (e) => resolve(`error: ${e.message}`));
  });
}

/** Module processes of this state directory still alive, by their process id (greeter-svc@1.0.0 …). */
function liveModuleProcesses(stateDir: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      if (!env.includes(`CHANGEOVER_STATE_DIR=${stateDir}`)) continue;
      if (readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z')) continue;
      const id = env.find((e) => e.startsWith('CHANGEOVER_PROCESS_ID='));
      if (id) out.push(id.slice('CHANGEOVER_PROCESS_ID='.length));
    } catch {
      // gone meanwhile
    }
  }
  return out.sort();
}

describe('kill -9 of the agent at each step of a changeover', () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let dir: string;

  beforeAll(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    dir = mkdtempSync(join(tmpdir(), 'agent-kill-'));
  });

  afterAll(async () => {
    await cleanUpAgents(dir);
    await nc?.close();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  let attempts = 0;

  it.each(['after-fetch', 'after-prepare', 'mid-switch', 'before-confirm'])('killed %s: restarts on the complete old set, reports regressed, and can then complete', async (point) => {
    // A fresh node and port per case.
    const run = `${point}-${++attempts}`;
    const nodeId = `k-${run}`;
    const stateDir = join(dir, run);
    const port = await freePort();
    const pk = greeterPackages(port, join(dir, `${run}.changes`));
    await putBlobs(nc, [pk.blobs.v1, pk.blobs.v2, pk.blobs.assets]);
    const orch = new FakeOrchestrator(nc, nodeId);
    await nc.flush();
    const env = { NATS_URL: nats.url, NODE_ID: nodeId, NODE_CLASS: 'kill', AGENT_STATE_DIR: stateDir, AGENT_TRUST_ROOTS: pk.trustRoots, AGENT_MIN_FREE_DISK_MB: '1' };

    // v1 installed by a healthy agent, which then stops.
    let agent = await spawnAgent(env);
    orch.propose('install', [pk.v1]);
    await orch.vote('install');
    orch.commit('install', [pk.sign(pk.v1)]);
    expect((await orch.final('install')).phase).toBe('completed');
    await agent.stop();

    // The update, with the agent dying at the step under test.
    agent = await spawnAgent({ ...env, AGENT_FAULT_AT: point });
    await waitFor('v1 serving', async () => (await version(port)) === 'v1');
    orch.propose('update', [pk.v2]);
    expect((await orch.vote('update')).decision).toBe('accept');
    orch.commit('update', [pk.sign(pk.v2)]);
    await agent.exited;
    expect(agent.child.signalCode).toBe('SIGKILL');

    // Restart: the interrupted changeover is regressed to the whole old set and reported.
    agent = await spawnAgent(env);
    const report = await orch.final('update');
    expect(report).toMatchObject({ phase: 'regressed', error: { code: 'INTERRUPTED' } });
    expect(report.inventory?.active.map((p) => `${p.name}@${p.version}`)).toEqual(['greeter@1.0.0']);
    const saved = JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')).state;
    expect(saved.journal).toBeNull();
    expect(saved.active.map((p: { manifest: { version: string } }) => p.manifest.version)).toEqual(['1.0.0']);
    // A killed agent takes the port's socket with it: the restarted one binds it again (waiting while
    // the dying processes still hold it) before the old set starts, so it serves as soon as it is up.
    expect(await version(port)).toBe('v1');
    expect(liveModuleProcesses(stateDir)).toEqual(['greeter-svc@1.0.0']);

    // A new attempt completes on the recovered node.
    orch.commit('update', [pk.sign(pk.v2)], {}, 1);
    expect((await orch.final('update', 1)).phase).toBe('completed');
    expect(await version(port)).toBe('v2');
    await waitFor('old process gone', () => liveModuleProcesses(stateDir).join() === 'greeter-svc@2.0.0');
    await agent.stop();
    expect(liveModuleProcesses(stateDir)).toEqual([]);
  });
});

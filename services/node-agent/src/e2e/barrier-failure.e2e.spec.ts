import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { freePort, startNats, waitFor, type TestNats } from '@changeover/test-kit';
import { AGENT_SDK_MAIN, cleanUpAgents, FakeOrchestrator, FIXTURES, localApiKnows, putBlobs, spawnAgent, type AgentProcess } from '../testing/agent-harness.js';
import { greeterPackages } from '../testing/greeter-packages.js';
import { fetchText } from '../testing/traffic.js';
import { manifestOf, moduleOf } from '../testing/packages.js';

describe('real agent: a process not ready at the changeover barrier (SDK onPrepare) keeps the node on its old set', () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let agent: AgentProcess;
  let orch: FakeOrchestrator;
  let port: number;
  let dir: string;
  let pk: ReturnType<typeof greeterPackages>;
  let preparerCode: string;
  const stateDir = () => join(dir, 'state');
  const stored = () => JSON.parse(readFileSync(join(stateDir(), 'state.json'), 'utf8')).state as { active: { manifest: { name: string; version: string } }[]; journal: unknown };
  const preparer = () =>
    manifestOf(
      'preparer',
      '1.0.0',
      [moduleOf('preparer-proc', '1.0.0', preparerCode, { dependsOn: ['greeter-svc'], run: { command: 'node', args: ['{module}'], env: { AGENT_SDK: AGENT_SDK_MAIN, PREPARE_FILE: join(dir, 'prepare-mode') }, restartOnChange: false, stopTimeoutMs: 5000 } })],
      { consumes: ['greeter-api@^1'] },
    );

  beforeAll(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    dir = mkdtempSync(join(tmpdir(), 'agent-barrier-e2e-'));
    port = await freePort();
    pk = greeterPackages(port, join(dir, 'changes.log'));
    preparerCode = readFileSync(join(FIXTURES, 'preparer.cjs'), 'utf8');
    await putBlobs(nc, [pk.blobs.v1, pk.blobs.v2, pk.blobs.assets, preparerCode]);
    orch = new FakeOrchestrator(nc, 'n1');
    await nc.flush();
    agent = await spawnAgent({ NATS_URL: nats.url, NODE_ID: 'n1', NODE_CLASS: 'e2e', AGENT_STATE_DIR: stateDir(), AGENT_TRUST_ROOTS: pk.trustRoots, AGENT_MIN_FREE_DISK_MB: '1', AGENT_REGISTRY_TIMEOUT_MS: '300' });
    await waitFor('hello', () => orch.hellos.length > 0);
    orch.propose('install', [pk.v1, preparer()]);
    expect((await orch.vote('install')).decision).toBe('accept');
    orch.commit('install', [pk.sign(pk.v1), pk.sign(preparer())]);
    expect(await orch.final('install')).toMatchObject({ phase: 'completed' });
    await waitFor('preparer registered with the local API', () => localApiKnows('preparer-proc@1.0.0', join(stateDir(), 'agent.sock')));
  });

  afterAll(async () => {
    await agent?.stop();
    await cleanUpAgents(dir);
    await nc?.close();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    ['no', 'preparer-proc@1.0.0: draining the job queue'],
    ['throw', 'preparer-proc@1.0.0: cache flush failed'],
    ['hang', 'preparer-proc@1.0.0: not ready within'],
  ])('onPrepare %s: failed with NOT_READY naming the process, nothing switched', async (mode, reason) => {
    writeFileSync(join(dir, 'prepare-mode'), mode);
    const id = `barrier-${mode}`;
    orch.propose(id, [pk.v2]);
    const vote = await orch.vote(id);
    expect(vote.decision).toBe('accept');
    expect(vote.affectedProcesses).toContain('preparer-proc@1.0.0');
    orch.commit(id, [pk.sign(pk.v2)], { changeoverTimeoutMs: 2000 });
    const done = await orch.final(id);
    expect(done.phase).toBe('failed');
    expect(done.error?.code).toBe('NOT_READY');
    expect(done.error?.message).toContain(reason);
    expect(done.inventory?.active.find((p) => p.name === 'greeter')?.version).toBe('1.0.0');
    expect(stored().active.map((p) => `${p.manifest.name}@${p.manifest.version}`).sort()).toEqual(['greeter@1.0.0', 'preparer@1.0.0']);
    expect(stored().journal).toBeNull();
    expect(await fetchText(port, '/version')).toBe('v1');
    expect(await localApiKnows('preparer-proc@1.0.0', join(stateDir(), 'agent.sock'))).toBe(true);
  });

  it('once ready again, the same change completes', async () => {
    writeFileSync(join(dir, 'prepare-mode'), 'ready');
    orch.propose('barrier-ready', [pk.v2]);
    expect((await orch.vote('barrier-ready')).decision).toBe('accept');
    orch.commit('barrier-ready', [pk.sign(pk.v2)]);
    expect(await orch.final('barrier-ready')).toMatchObject({ phase: 'completed' });
    await waitFor('v2 serving', async () => (await fetchText(port, '/version').catch(() => '')) === 'v2');
  });
});

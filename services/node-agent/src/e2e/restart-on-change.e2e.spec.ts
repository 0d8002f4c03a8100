import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { freePort, startNats, waitFor, type TestNats } from '@changeover/test-kit';
import { cleanUpAgents, FakeOrchestrator, FIXTURES, putBlobs, spawnAgent, type AgentProcess } from '../testing/agent-harness.js';
import { greeterPackages } from '../testing/greeter-packages.js';
import { fetchText, trafficTo } from '../testing/traffic.js';
import { manifestOf, moduleOf } from '../testing/packages.js';

describe('real agent: a module restarted on change starts and passes its health check before the old instance stops', () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let agent: AgentProcess;
  let orch: FakeOrchestrator;
  let greeterPort: number;
  let relayPort: number;
  let dir: string;
  let pk: ReturnType<typeof greeterPackages>;
  let relayCode: string;
  let v5Code: string;
  const stateDir = () => join(dir, 'state');
  const activeVersions = () =>
    (JSON.parse(readFileSync(join(stateDir(), 'state.json'), 'utf8')).state.active as { manifest: { name: string; version: string } }[]).map((p) => `${p.manifest.name}@${p.manifest.version}`).sort();

  // The relay depends on the greeter's module and asks to be restarted when it changes; it refuses greeter v5.
  const relay = () =>
    manifestOf(
      'relay',
      '1.0.0',
      [
        moduleOf('relay-svc', '1.0.0', relayCode, {
          dependsOn: ['greeter-svc'],
          run: {
            command: 'node',
            args: ['{module}'],
            env: { GREETER_URL: `http://127.0.0.1:${greeterPort}`, REFUSE_GREETER: 'v5' },
            listen: { port: relayPort, host: '127.0.0.1' },
            healthCheck: { type: 'http', path: '/health', timeoutMs: 2000 },
            restartOnChange: true,
            stopTimeoutMs: 10_000,
          },
        }),
      ],
      { consumes: ['greeter-api@^1'] },
    );
  // A healthy greeter the relay does not accept.
  const v5 = () => ({ ...pk.v2, version: '5.0.0', provides: ['greeter-api@1.3.0'], modules: [moduleOf('greeter-svc', '5.0.0', v5Code, { run: pk.v2.modules[0]!.run! }), pk.v2.modules[1]!] });

  beforeAll(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    dir = mkdtempSync(join(tmpdir(), 'agent-restart-e2e-'));
    greeterPort = await freePort();
    relayPort = await freePort();
    pk = greeterPackages(greeterPort, join(dir, 'changes.log'));
    relayCode = readFileSync(join(FIXTURES, 'relay.cjs'), 'utf8');
    v5Code = pk.blobs.v2.replace("const VERSION = 'v2';", "const VERSION = 'v5';");
    await putBlobs(nc, [pk.blobs.v1, pk.blobs.v2, pk.blobs.assets, relayCode, v5Code]);
    orch = new FakeOrchestrator(nc, 'n1');
    await nc.flush();
    agent = await spawnAgent({ NATS_URL: nats.url, NODE_ID: 'n1', NODE_CLASS: 'e2e', AGENT_STATE_DIR: stateDir(), AGENT_TRUST_ROOTS: pk.trustRoots, AGENT_MIN_FREE_DISK_MB: '1', AGENT_REGISTRY_TIMEOUT_MS: '300' });
    await waitFor('hello', () => orch.hellos.length > 0);
  });

  afterAll(async () => {
    await agent?.stop();
    await cleanUpAgents(dir);
    await nc?.close();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('installs greeter v1 and the relay', async () => {
    orch.propose('install', [pk.v1, relay()]);
    expect((await orch.vote('install')).decision).toBe('accept');
    orch.commit('install', [pk.sign(pk.v1), pk.sign(relay())]);
    expect(await orch.final('install')).toMatchObject({ phase: 'completed' });
    await waitFor('relay serving', async () => (await fetchText(relayPort, '/').catch(() => '')).startsWith('relay '));
  });

  it('greeter v1 → v2 restarts the relay with zero failed requests to it', async () => {
    const before = await fetchText(relayPort, '/');
    const traffic = trafficTo(relayPort, 20_000);
    await waitFor('traffic flowing', () => traffic.stats.ok > 20);
    orch.propose('update', [pk.v2]);
    const vote = await orch.vote('update');
    expect(vote.decision).toBe('accept');
    expect(vote.affectedProcesses).toContain('relay-svc@1.0.0');
    orch.commit('update', [pk.sign(pk.v2)]);
    const done = await orch.final('update');
    expect(done.phase).toBe('completed');
    await waitFor('new relay instance answering', () => [...traffic.stats.bodies].some((b) => b !== before));
    const seen = traffic.stats.ok;
    await waitFor('more traffic on the new instance', () => traffic.stats.ok > seen + 50);
    await traffic.stop();
    expect(traffic.stats.errors.slice(0, 3)).toEqual([]);
    expect(traffic.stats.failed).toBe(0);
    expect(traffic.stats.bodies.size).toBe(2);
    expect(await fetchText(relayPort, '/')).not.toBe(before);
    expect(await fetchText(greeterPort, '/version')).toBe('v2');
  });

  it('an unhealthy restarted relay regresses the node: greeter back to v2, the old relay still serving, a failed report', async () => {
    const before = await fetchText(relayPort, '/');
    const traffic = trafficTo(relayPort, 20_000);
    await waitFor('traffic flowing', () => traffic.stats.ok > 20);
    orch.propose('refused', [v5()]);
    expect((await orch.vote('refused')).decision).toBe('accept');
    orch.commit('refused', [pk.sign(v5())], { changeoverTimeoutMs: 3000 });
    const done = await orch.final('refused');
    await traffic.stop();
    expect(done.phase).toBe('failed');
    expect(done.error?.code).toBe('HEALTH_CHECK_FAILED');
    expect(done.error?.message).toContain('relay-svc@1.0.0');
    expect(done.error?.message).toContain('relay refuses greeter v5');
    expect(done.inventory?.active.find((p) => p.name === 'greeter')?.version).toBe('2.0.0');
    expect(activeVersions()).toEqual(['greeter@2.0.0', 'relay@1.0.0']);
    expect(traffic.stats.errors.slice(0, 3)).toEqual([]);
    expect(traffic.stats.failed).toBe(0);
    // The candidate shares the socket while it is checked, so it may have answered a few; afterwards only the old one does.
    expect(traffic.stats.bodies).toContain(before);
    const settled = trafficTo(relayPort, 50);
    await waitFor('100 requests after the failure', () => settled.stats.ok + settled.stats.failed >= 100);
    await settled.stop();
    expect(settled.stats.failed).toBe(0);
    expect(settled.stats.bodies).toEqual(new Set([before]));
    expect(await fetchText(greeterPort, '/version')).toBe('v2');
  });
});

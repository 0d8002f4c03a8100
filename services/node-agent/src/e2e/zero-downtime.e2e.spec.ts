import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { freePort, startNats, waitFor, type TestNats } from '@changeover/test-kit';
import { cleanUpAgents, FakeOrchestrator, localApiKnows as knownToLocalApi, localApiStatus, putBlobs, spawnAgent, type AgentProcess } from '../testing/agent-harness.js';
import { greeterPackages } from '../testing/greeter-packages.js';
import { GetPackagesRequest, packageId, subjects, type SignedPackage } from '@changeover/contracts';
import { serveRpc } from '@changeover/messaging';
import { fetchText, trafficTo } from '../testing/traffic.js';
import { manifestOf, moduleOf } from '../testing/packages.js';

const localApiKnows = (processId: string, socketPath: string = currentSocket) => knownToLocalApi(processId, socketPath);
const apiStatus = localApiStatus;
let currentSocket = '';

describe('real agent: zero-downtime changeover of a TCP service with a consumer', () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let agent: AgentProcess;
  let orch: FakeOrchestrator;
  let port: number;
  let dir: string;
  let pk: ReturnType<typeof greeterPackages>;
  const stateDir = () => join(dir, 'state');
  const state = () => JSON.parse(readFileSync(join(stateDir(), 'state.json'), 'utf8')).state as { active: { manifest: { name: string; version: string } }[]; previous: { manifest: { name: string; version: string } }[] };
  const versions = (set: { manifest: { name: string; version: string } }[]) => set.map((p) => `${p.manifest.name}@${p.manifest.version}`).sort();
  const changes = () => (existsSync(join(dir, 'changes.log')) ? readFileSync(join(dir, 'changes.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { rolloutId: string; why: string[] }) : []);

  beforeAll(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    dir = mkdtempSync(join(tmpdir(), 'agent-e2e-'));
    port = await freePort();
    pk = greeterPackages(port, join(dir, 'changes.log'));
    await putBlobs(nc, [pk.blobs.v1, pk.blobs.v2, pk.blobs.v3, pk.blobs.assets, pk.blobs.consumer]);
    orch = new FakeOrchestrator(nc, 'n1');
    currentSocket = join(stateDir(), 'agent.sock');
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

  it('installs v1 of the service and its consumer', async () => {
    orch.propose('install', [pk.v1, pk.client]);
    expect((await orch.vote('install')).decision).toBe('accept');
    orch.commit('install', [pk.sign(pk.v1), pk.sign(pk.client)]);
    const done = await orch.final('install');
    expect(done).toMatchObject({ phase: 'completed', modulesFetched: 3 });
    await waitFor('v1 serving', async () => (await fetchText(port, '/version').catch(() => '')) === 'v1');
    await waitFor('consumer registered with the local API', () => localApiKnows('client-proc@1.0.0'));
    // Anyone else on the node asking as the consumer is refused.
    expect(await apiStatus(currentSocket, 'client-proc@1.0.0')).toBe(401);
    expect(await apiStatus(currentSocket, 'client-proc@1.0.0', 'guessed')).toBe(401);
  });

  it('updates v1 → v2 under continuous traffic with zero failed requests, tells the consumer, keeps v1, fetches only the changed module', async () => {
    const traffic = trafficTo(port);
    await waitFor('traffic flowing', () => traffic.stats.ok > 20);

    orch.propose('update', [pk.v2]);
    const vote = await orch.vote('update');
    expect(vote.decision).toBe('accept');
    expect(vote.affectedProcesses).toEqual(['client-proc@1.0.0', 'greeter-svc@1.0.0']);
    expect(vote.verdicts).toEqual(expect.arrayContaining([expect.objectContaining({ processId: 'client-proc@1.0.0', decision: 'accept' })]));

    orch.commit('update', [pk.sign(pk.v2)]);
    const done = await orch.final('update');
    expect(done.phase).toBe('completed');
    expect(done.bytesFetched).toBe(Buffer.byteLength(pk.blobs.v2));
    expect(done).toMatchObject({ modulesFetched: 1 });
    await waitFor('v2 answering', () => traffic.stats.bodies.has('hello from v2'));
    const seen = traffic.stats.ok;
    await waitFor('more traffic on v2', () => traffic.stats.ok > seen + 50);
    await traffic.stop();

    expect(traffic.stats.errors.slice(0, 3)).toEqual([]);
    expect(traffic.stats.failed).toBe(0);
    expect(traffic.stats.bodies).toEqual(new Set(['hello from v1', 'hello from v2']));
    expect(await fetchText(port, '/version')).toBe('v2');
    expect(changes()).toEqual([expect.objectContaining({ rolloutId: 'update', why: ['depends-on:greeter-svc'] })]);
    expect(versions(state().active)).toEqual(['client@1.0.0', 'greeter@2.0.0']);
    expect(versions(state().previous)).toEqual(['client@1.0.0', 'greeter@1.0.0']);
    expect(done.inventory?.previous.map((p) => `${p.name}@${p.version}`).sort()).toEqual(['client@1.0.0', 'greeter@1.0.0']);
    expect(existsSync(join(stateDir(), 'modules', pk.v1.modules[0]!.digest.slice(7)))).toBe(true);
  });

  it('answers a duplicate commit from its record without changing over twice', async () => {
    const before = orch.progress.filter((p) => p.rolloutId === 'update').length;
    orch.commit('update', [pk.sign(pk.v2)]);
    await waitFor('repeat answered', () => orch.progress.filter((p) => p.rolloutId === 'update').length === before + 1);
    expect(orch.progress.at(-1)).toMatchObject({ rolloutId: 'update', phase: 'completed' });
  });

  it('regresses to the previous set on command, still without a failed request', async () => {
    const traffic = trafficTo(port);
    await waitFor('traffic flowing', () => traffic.stats.ok > 20);
    orch.regress('back', { kind: 'previous' });
    const done = await orch.final('back');
    expect(done).toMatchObject({ phase: 'regressed', bytesFetched: 0 });
    await waitFor('v1 answering again', async () => (await fetchText(port, '/version').catch(() => '')) === 'v1');
    await traffic.stop();
    expect(traffic.stats.failed).toBe(0);
    expect(versions(state().active)).toEqual(['client@1.0.0', 'greeter@1.0.0']);
    // And forward again to a named version kept locally.
    orch.regress('fwd', { kind: 'version', package: 'greeter', version: '2.0.0' });
    expect(await orch.final('fwd')).toMatchObject({ phase: 'regressed', bytesFetched: 0 });
    expect(await fetchText(port, '/version')).toBe('v2');
  });

  it('regresses at once when the new version fails its health check, reporting the health output', async () => {
    const traffic = trafficTo(port);
    await waitFor('traffic flowing', () => traffic.stats.ok > 20);
    orch.propose('broken', [pk.v3]);
    expect((await orch.vote('broken')).decision).toBe('accept');
    orch.commit('broken', [pk.sign(pk.v3)], { changeoverTimeoutMs: 3000 });
    const done = await orch.final('broken');
    await traffic.stop();
    expect(done.phase).toBe('failed');
    expect(done.error?.code).toBe('HEALTH_CHECK_FAILED');
    expect(done.error?.message).toContain('503 broken v3');
    expect(done.inventory?.active.find((p) => p.name === 'greeter')?.version).toBe('2.0.0');
    expect(traffic.stats.failed).toBe(0);
    expect(await fetchText(port, '/version')).toBe('v2');
  });

  it('vetoes a consumer veto, an API break, and refuses bad signatures, bad digests and unknown versions, installing nothing', async () => {
    // The agent's own veto: greeter@4 provides greeter-api@2.0.0, the running client needs ^1.
    orch.propose('api-break', [pk.v4]);
    const v = await orch.vote('api-break');
    expect(v.decision).toBe('veto');
    expect(v.verdicts).toEqual(expect.arrayContaining([expect.objectContaining({ processId: 'agent', reason: 'API_INCOMPATIBLE' })]));
    expect(v.affectedProcesses).toContain('client-proc@1.0.0');

    // A consumer linked to the SDK vetoes with a typed reason and a retry time.
    orch.propose('busy-window', [pk.v1]);
    const busy = await orch.vote('busy-window');
    expect(busy.decision).toBe('veto');
    expect(busy.verdicts).toEqual([{ processId: 'client-proc@1.0.0', module: 'client-proc', decision: 'veto', reason: 'PROCESS_BUSY', message: 'busy with a batch', retryAfterMs: 1000 }, { processId: 'greeter-svc@2.0.0', module: 'greeter-svc', decision: 'accept' }]);
    orch.propose('busy-window', [pk.v1]);
    await waitFor('the same answer again', () => orch.votes.filter((x) => x.rolloutId === 'busy-window').length === 2);
    expect(orch.votes.filter((x) => x.rolloutId === 'busy-window')[1]).toEqual(busy);

    // A bad signature.
    orch.propose('rogue', [pk.v1]);
    expect((await orch.vote('rogue')).decision).toBe('accept');
    orch.commit('rogue', [pk.signRogue(pk.v1)]);
    expect(await orch.final('rogue')).toMatchObject({ phase: 'failed', error: { code: 'SIGNATURE_INVALID' } });

    // A module whose blob in the object store does not match its digest.
    const tampered = { ...pk.v1, version: '1.0.1', modules: [{ ...pk.v1.modules[0]!, version: '1.0.1', digest: `sha256:${'ab'.repeat(32)}` }, pk.v1.modules[1]!] };
    const { Objm } = await import('@nats-io/obj');
    const os = await new Objm(nc).open('changeover-modules');
    await os.putBlob({ name: `sha256:${'ab'.repeat(32)}` }, new TextEncoder().encode('tampered bytes'));
    orch.propose('tamper', [tampered]);
    expect((await orch.vote('tamper')).decision).toBe('accept');
    orch.commit('tamper', [pk.sign(tampered)]);
    expect(await orch.final('tamper')).toMatchObject({ phase: 'failed', error: { code: 'DIGEST_MISMATCH' } });
    expect(existsSync(join(stateDir(), 'modules', 'ab'.repeat(32)))).toBe(false);

    // A version this node does not keep, and no registry runs in this test: the failure says so
    // (UNAVAILABLE, retryable), not that the version does not exist.
    orch.regress('nowhere', { kind: 'version', package: 'greeter', version: '9.9.9' });
    expect(await orch.final('nowhere')).toMatchObject({ phase: 'failed', error: { code: 'UNAVAILABLE', message: expect.stringContaining('the registry did not answer') } });

    expect(versions(state().active)).toEqual(['client@1.0.0', 'greeter@2.0.0']);
    expect(await fetchText(port, '/version')).toBe('v2');
  });

  it('regresses to a version it never had by fetching its manifest from the registry and its module from the object store', async () => {
    // greeter 1.5.0 was published (the registry keeps old versions) but never installed here.
    const code = pk.blobs.v1.replace("const VERSION = 'v1';", "const VERSION = 'v15';");
    const v15 = pk.sign({ ...pk.v1, version: '1.5.0', modules: pk.v1.modules.map((m) => (m.name === 'greeter-svc' ? { ...moduleOf('greeter-svc', '1.5.0', code, { run: m.run! }) } : m)) });
    await putBlobs(nc, [code]);
    const registry: Record<string, SignedPackage> = { [packageId(v15.manifest)]: v15 };
    const asked: string[] = [];
    const responder = serveRpc(nc, subjects.agentRequestAny('get-packages'), GetPackagesRequest, async (req) => {
      asked.push(...req.packages.map(packageId));
      return { packages: req.packages.map((p) => registry[packageId(p)]).filter((p): p is SignedPackage => p !== undefined) };
    });
    await nc.flush();
    const traffic = trafficTo(port);
    await waitFor('traffic flowing', () => traffic.stats.ok > 5);
    try {
      orch.regress('old', { kind: 'version', package: 'greeter', version: '1.5.0' });
      const done = await orch.final('old');
      expect(done).toMatchObject({ phase: 'regressed' });
      expect((done as { bytesFetched?: number }).bytesFetched).toBe(Buffer.byteLength(code));
    } finally {
      await traffic.stop();
      responder.stop();
    }
    expect(asked).toEqual(['greeter@1.5.0']);
    expect(versions(state().active)).toEqual(['client@1.0.0', 'greeter@1.5.0']);
    expect(await fetchText(port, '/version')).toBe('v15');
    expect(traffic.stats.failed).toBe(0);
  });

  it('fails the commit of a package the registry never stored, installing nothing', async () => {
    const ghost = manifestOf('ghost', '1.0.0', [moduleOf('ghost-bin', '1.0.0', 'never published')]);
    orch.propose('ghost', [ghost]);
    expect((await orch.vote('ghost')).decision).toBe('accept');
    orch.commit('ghost', [pk.sign(ghost)]);
    expect(await orch.final('ghost')).toMatchObject({ phase: 'failed', error: { code: 'NOT_FOUND' } });
    expect(versions(state().active)).toEqual(['client@1.0.0', 'greeter@1.5.0']);
  });
});

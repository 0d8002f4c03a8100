import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Objm } from '@nats-io/obj';
import { MODULE_BUCKET, signManifest, type PackageManifest } from '@changeover/contracts';
import { freePort, startNats, waitFor, type TestNats } from '@changeover/test-kit';
import { cleanUpAgents, FakeOrchestrator, spawnAgent, type AgentProcess } from '../testing/agent-harness.js';
import { digestOf, manifestOf } from '../testing/packages.js';

// Modules many times larger than a NATS message (1 MB here), fetched by a real agent process from the
// JetStream object store: streamed to disk with the signed digest checked on the way, and a tampered
// one (one bit flipped) refused with DIGEST_MISMATCH, counted, with no temp file left and the old version kept.

const MB = 1024 * 1024;
const V1 = randomBytes(12 * MB);
const V2 = randomBytes(16 * MB);

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

describe('a large module through a real agent', () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let dir: string;
  let agent: AgentProcess;
  let orch: FakeOrchestrator;
  let metricsPort: number;
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const sign = (m: PackageManifest) => signManifest(m, privateKey, 'publisher');
  const pkg = (version: string, bytes: Buffer) => manifestOf('dataset', version, [{ name: 'weights', version, processorType: 'any', size: bytes.length, digest: digestOf(bytes), dependsOn: [], requires: {} }]);
  const v1 = pkg('1.0.0', V1);
  const v2 = pkg('2.0.0', V2);
  const stateDir = () => join(dir, 'state');
  const modulesDir = () => join(stateDir(), 'modules');
  const blobFile = (bytes: Buffer) => join(modulesDir(), digestOf(bytes).slice('sha256:'.length));
  const active = () => (JSON.parse(readFileSync(join(stateDir(), 'state.json'), 'utf8')) as { state: { active: { manifest: { name: string; version: string } }[]; journal: unknown } }).state;
  const counter = async (series: string) => {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line ? Number(line.slice(series.length + 1)) : 0;
  };

  beforeAll(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    dir = mkdtempSync(join(tmpdir(), 'agent-large-'));
    const os = await new Objm(nc).create(MODULE_BUCKET);
    await os.putBlob({ name: digestOf(V1) }, V1);
    orch = new FakeOrchestrator(nc, 'big-1');
    await nc.flush();
    metricsPort = await freePort();
    agent = await spawnAgent({
      NATS_URL: nats.url,
      NODE_ID: 'big-1',
      NODE_CLASS: 'big',
      AGENT_STATE_DIR: stateDir(),
      AGENT_TRUST_ROOTS: JSON.stringify({ publisher: publicKey.export({ format: 'pem', type: 'spki' }).toString() }),
      AGENT_MIN_FREE_DISK_MB: '1',
      AGENT_HEALTH_PORT: String(metricsPort),
    });
  });

  afterAll(async () => {
    await agent?.stop();
    await cleanUpAgents(dir);
    await nc?.close();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('installs a 12 MB module fetched in chunks, the file on disk matching the signed digest', async () => {
    const info = await (await new Objm(nc).open(MODULE_BUCKET)).info(digestOf(V1));
    expect(info!.chunks).toBeGreaterThan(12);
    orch.propose('big-v1', [v1]);
    expect((await orch.vote('big-v1')).decision).toBe('accept');
    orch.commit('big-v1', [sign(v1)]);
    const done = await orch.final('big-v1');
    expect(done).toMatchObject({ phase: 'completed', bytesFetched: V1.length });
    expect(await sha256OfFile(blobFile(V1))).toBe(digestOf(V1));
    expect(active().active.map((p) => `${p.manifest.name}@${p.manifest.version}`)).toEqual(['dataset@1.0.0']);
  });

  it('refuses a 16 MB module with one bit flipped: DIGEST_MISMATCH, counted, no temp file, v1 kept', async () => {
    const tampered = Buffer.from(V2);
    tampered[tampered.length >> 1]! ^= 0x10;
    // Stored under the signed digest of the good bytes, with the object store's own checksum of the bad ones.
    const os = await new Objm(nc).open(MODULE_BUCKET);
    await os.putBlob({ name: digestOf(V2) }, tampered);
    const before = await counter('agent_fetch_failures_total{code="DIGEST_MISMATCH"}');

    orch.propose('big-tampered', [v2]);
    expect((await orch.vote('big-tampered')).decision).toBe('accept');
    orch.commit('big-tampered', [sign(v2)]);
    const done = await orch.final('big-tampered');
    expect(done).toMatchObject({ phase: 'failed', error: { code: 'DIGEST_MISMATCH', message: expect.stringContaining(`module content has digest ${digestOf(tampered)}, expected ${digestOf(V2)}`) } });
    expect(done.inventory?.active.map((p) => `${p.name}@${p.version}`)).toEqual(['dataset@1.0.0']);
    expect(await counter('agent_fetch_failures_total{code="DIGEST_MISMATCH"}')).toBe(before + 1);

    // Nothing half-written: no temp file, no blob under the digest; the old version's file intact and active.
    expect(readdirSync(modulesDir()).sort()).toEqual([digestOf(V1).slice('sha256:'.length)]);
    expect(await sha256OfFile(blobFile(V1))).toBe(digestOf(V1));
    expect(active()).toMatchObject({ journal: null, active: [{ manifest: { name: 'dataset', version: '1.0.0' } }] });
  });

  it('installs the 16 MB module once the object store holds the right bytes, v1 kept as the previous set', async () => {
    const os = await new Objm(nc).open(MODULE_BUCKET);
    await os.putBlob({ name: digestOf(V2) }, V2);
    orch.propose('big-v2', [v2]);
    expect((await orch.vote('big-v2')).decision).toBe('accept');
    orch.commit('big-v2', [sign(v2)]);
    expect(await orch.final('big-v2')).toMatchObject({ phase: 'completed', bytesFetched: V2.length });
    expect(await sha256OfFile(blobFile(V2))).toBe(digestOf(V2));
    expect(readdirSync(modulesDir()).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const s = JSON.parse(readFileSync(join(stateDir(), 'state.json'), 'utf8')) as { state: { active: { manifest: { version: string } }[]; previous: { manifest: { version: string } }[] } };
    expect(s.state.active.map((p) => p.manifest.version)).toEqual(['2.0.0']);
    expect(s.state.previous.map((p) => p.manifest.version)).toEqual(['1.0.0']);
    await waitFor('the agent still connected', async () => (await fetch(`http://127.0.0.1:${metricsPort}/health/ready`)).ok);
  });
});

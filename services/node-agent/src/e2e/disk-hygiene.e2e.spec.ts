import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { signManifest, type PackageManifest } from '@changeover/contracts';
import { freePort, startNats, waitFor, type TestNats } from '@changeover/test-kit';
import { cleanUpAgents, FakeOrchestrator, FIXTURES, putBlobs, spawnAgent } from '../testing/agent-harness.js';
import { digestOf, manifestOf, moduleOf } from '../testing/packages.js';
import { fetchText } from '../testing/traffic.js';

// Disk hygiene on a real agent: a package goes 1.0.0 → 1.1.0 → 1.2.0 → 1.3.0 and only the versions
// the node keeps stay in its module store (shared blobs included while used); the regression still works.

const VERSIONS = ['1.0.0', '1.1.0', '1.2.0', '1.3.0'];
const rolloutOf = (version: string, nodeId: string) => `web-${version.replaceAll('.', '_')}-${nodeId}`;
const ASSETS = readFileSync(join(FIXTURES, 'assets.txt'), 'utf8');
// A module that prints numbered lines (stdout and stderr by turns), 20 every 5 ms, until stopped.
const CHATTY = `let i = 0;
setInterval(() => {
  for (let k = 0; k < 20; k++, i++) (i % 2 ? process.stderr : process.stdout).write('line ' + i + ' ' + 'x'.repeat(i % 60) + '\\n');
}, 5);
`;

describe('real agent: module garbage collection across four versions', () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let dir: string;
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const trustRoots = JSON.stringify({ publisher: publicKey.export({ format: 'pem', type: 'spki' }).toString() });
  const template = readFileSync(join(FIXTURES, 'greeter.cjs'), 'utf8');
  const code = (v: string) => template.replace("const VERSION = 'v1';", `const VERSION = 'v${v}';`);

  beforeAll(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    dir = mkdtempSync(join(tmpdir(), 'agent-gc-e2e-'));
    await putBlobs(nc, [...VERSIONS.map(code), ASSETS, CHATTY]);
  });

  afterAll(async () => {
    await cleanUpAgents(dir);
    await nc?.close();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A node with the web service on its own port, and the web package at each version (its assets module the same in all). */
  async function node(name: string, env: Record<string, string> = {}) {
    const port = await freePort();
    const healthPort = await freePort();
    const stateDir = join(dir, name);
    const run = { command: 'node', args: ['{module}'], env: {}, listen: { port, host: '127.0.0.1' }, healthCheck: { type: 'http' as const, path: '/health', timeoutMs: 2000 }, restartOnChange: false, stopTimeoutMs: 10_000 };
    const web = (v: string): PackageManifest => manifestOf('web', v, [moduleOf('web-svc', v, code(v), { run }), moduleOf('web-assets', '1.0.0', ASSETS)]);
    const orch = new FakeOrchestrator(nc, name);
    await nc.flush();
    const agentEnv = { NATS_URL: nats.url, NODE_ID: name, NODE_CLASS: 'gc', AGENT_STATE_DIR: stateDir, AGENT_TRUST_ROOTS: trustRoots, AGENT_MIN_FREE_DISK_MB: '1', AGENT_HEALTH_PORT: String(healthPort), ...env };
    const node = {
      port,
      stateDir,
      web,
      orch,
      agent: await spawnAgent(agentEnv),
      restart: async () => {
        await node.agent.stop();
        node.agent = await spawnAgent(agentEnv);
      },
      /** Module files in the store, as the versions whose code they hold (`assets` for the shared module). */
      onDisk: () =>
        readdirSync(join(stateDir, 'modules'))
          .map((f) => (f === digestOf(ASSETS).slice(7) ? 'assets' : (VERSIONS.find((v) => digestOf(code(v)).slice(7) === f) ?? f)))
          .sort(),
      state: () => JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')).state as Record<'active' | 'previous' | 'kept', { manifest: { version: string } }[]>,
      metric: async (name: string) => {
        const text = await fetchText(healthPort, '/metrics');
        const line = text.split('\n').find((l) => l.startsWith(`${name} `));
        return line ? Number(line.split(' ')[1]) : 0;
      },
      /** The end of a regress of a rollout whose commit completed. */
      regressed: (rolloutId: string) => waitFor(`regress of ${rolloutId}`, () => orch.progress.find((p) => p.rolloutId === rolloutId && (p.phase === 'regressed' || p.phase === 'failed')), { timeoutMs: 60_000 }),
      install: async (v: string) => {
        const id = rolloutOf(v, name);
        orch.propose(id, [web(v)]);
        expect((await orch.vote(id)).decision).toBe('accept');
        orch.commit(id, [signManifest(web(v), privateKey, 'publisher')]);
        expect((await orch.final(id)).phase).toBe('completed');
        await waitFor(`v${v} serving`, async () => (await fetchText(port, '/version').catch(() => '')) === `v${v}`, { timeoutMs: 30_000 });
      },
    };
    return node;
  }

  const versions = (ps: { manifest: { version: string } }[]) => ps.map((p) => p.manifest.version);

  it('keeps the active and the previous version by default, collects at start-up too, and regresses to the previous one', async () => {
    const n = await node('gc-default');
    const expected: Record<string, string[]> = {
      '1.0.0': ['1.0.0', 'assets'],
      '1.1.0': ['1.0.0', '1.1.0', 'assets'],
      '1.2.0': ['1.1.0', '1.2.0', 'assets'],
      '1.3.0': ['1.2.0', '1.3.0', 'assets'],
    };
    for (const v of VERSIONS) {
      await n.install(v);
      // The collection runs right after the completion is reported, before the next command.
      await waitFor(`only the kept versions on disk after ${v}`, () => n.onDisk().join() === expected[v]!.join(), { timeoutMs: 30_000 });
    }
    expect(versions(n.state().active)).toEqual(['1.3.0']);
    expect(versions(n.state().previous)).toEqual(['1.2.0']);
    expect(n.state().kept).toEqual([]);
    // Counted once the last file is deleted, which the listing above may see first.
    await waitFor('the reclaimed files counted', async () => (await n.metric('agent_gc_reclaimed_files_total')) >= 2, { timeoutMs: 30_000 });
    expect(await n.metric('agent_gc_reclaimed_files_total')).toBe(2);
    expect(await n.metric('agent_gc_reclaimed_bytes_total')).toBe(Buffer.byteLength(code('1.0.0')) + Buffer.byteLength(code('1.1.0')));
    expect(await n.metric('agent_gc_versions_dropped_total')).toBe(2);

    // A module file nothing references (left by a crash of an older agent) goes at the next start.
    const orphan = join(n.stateDir, 'modules', digestOf('orphan').slice(7));
    writeFileSync(orphan, 'orphan');
    await n.restart();
    expect(n.onDisk()).toEqual(['1.2.0', '1.3.0', 'assets']);
    expect(await fetchText(n.port, '/version')).toBe('v1.3.0');

    // The regression target survived every collection: back to 1.2.0 with nothing to fetch.
    n.orch.regress(rolloutOf('1.3.0', 'gc-default'), { kind: 'previous' });
    const back = await n.regressed(rolloutOf('1.3.0', 'gc-default'));
    expect(back).toMatchObject({ phase: 'regressed', modulesFetched: 0 });
    expect(back.inventory?.active.map((p) => `${p.name}@${p.version}`)).toEqual(['web@1.2.0']);
    await waitFor('v1.2.0 serving', async () => (await fetchText(n.port, '/version').catch(() => '')) === 'v1.2.0', { timeoutMs: 30_000 });
    expect(n.onDisk()).toEqual(['1.2.0', '1.3.0', 'assets']);
    await n.agent.stop();
  });

  it('keeps AGENT_KEEP_VERSIONS older versions: a regression to the oldest kept one runs from the local store', async () => {
    const n = await node('gc-keep-2', { AGENT_KEEP_VERSIONS: '2' });
    for (const v of VERSIONS) await n.install(v);
    await waitFor('three versions on disk', () => n.onDisk().join() === ['1.1.0', '1.2.0', '1.3.0', 'assets'].join(), { timeoutMs: 30_000 });
    expect(versions(n.state().kept)).toEqual(['1.1.0']);

    n.orch.regress(rolloutOf('1.3.0', 'gc-keep-2'), { kind: 'version', package: 'web', version: '1.1.0' });
    const back = await n.regressed(rolloutOf('1.3.0', 'gc-keep-2'));
    expect(back).toMatchObject({ phase: 'regressed', modulesFetched: 0 });
    await waitFor('v1.1.0 serving', async () => (await fetchText(n.port, '/version').catch(() => '')) === 'v1.1.0', { timeoutMs: 30_000 });
    // 1.1.0 active, 1.3.0 the previous set's, 1.2.0 kept: all three stay.
    await waitFor('the same three versions on disk', () => n.onDisk().join() === ['1.1.0', '1.2.0', '1.3.0', 'assets'].join(), { timeoutMs: 30_000 });
    await n.agent.stop();
  });

  it('rotates a module process log at AGENT_LOG_MAX_BYTES, keeping AGENT_LOG_KEEP files with no line lost between them', async () => {
    const n = await node('gc-logs', { AGENT_LOG_MAX_BYTES: '16384', AGENT_LOG_KEEP: '3' });
    const chatty = manifestOf('chatty', '1.0.0', [moduleOf('chatty-svc', '1.0.0', CHATTY, { run: { command: 'node', args: ['{module}'], env: {}, restartOnChange: false, stopTimeoutMs: 5000 } })]);
    n.orch.propose('chatty', [chatty]);
    expect((await n.orch.vote('chatty')).decision).toBe('accept');
    n.orch.commit('chatty', [signManifest(chatty, privateKey, 'publisher')]);
    expect((await n.orch.final('chatty')).phase).toBe('completed');
    await waitFor('six rotations', async () => (await n.metric('agent_log_rotations_total')) >= 6, { timeoutMs: 60_000 });
    await n.agent.stop();

    const log = join(n.stateDir, 'logs', 'chatty-svc.log');
    const files = [`${log}.3`, `${log}.2`, `${log}.1`, log];
    expect(readdirSync(join(n.stateDir, 'logs')).filter((f) => f.startsWith('chatty-svc.log')).sort()).toEqual(['chatty-svc.log', 'chatty-svc.log.1', 'chatty-svc.log.2', 'chatty-svc.log.3']);
    for (const f of files.slice(0, 3)) {
      const text = readFileSync(f, 'utf8');
      expect(text.length).toBeLessThanOrEqual(16384 + 4096);
      expect(text.endsWith('\n')).toBe(true);
    }
    // The kept files hold one run of lines, each once and in order, from the oldest file to the current one.
    const numbers = files
      .map((f) => readFileSync(f, 'utf8'))
      .join('')
      .split('\n')
      .filter((l) => l.startsWith('line '))
      .map((l) => Number(l.split(' ')[1]));
    expect(numbers.length).toBeGreaterThan(500);
    expect(numbers).toEqual(Array.from({ length: numbers.length }, (_, i) => numbers[0]! + i));
    // The pipe went with the process.
    expect(readdirSync(join(n.stateDir, 'pipes'))).toEqual([]);
  });
});

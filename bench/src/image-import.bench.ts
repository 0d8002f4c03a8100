import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, openSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import { pack as tarPack } from 'tar-stream';
import { signManifest, type PackageManifest } from '@changeover/contracts';
import { createTestDatabase, freePort, startNats, waitFor } from '@changeover/test-kit';

// `npm run bench:image -- [--mb N]`: builds an update image holding one N MB (default 200) random,
// incompressible module, posts it to the rollout service's /rollouts/from-image as a stream, which
// puts it into the upload object store in chunks and asks the registry to import it by reference.
// The rollout then runs to its end on one real node agent, which fetches the module from the
// module object store, checks it against the signed digest while it streams it to disk, and
// switches to it. The registry's, the rollout service's and the agent's RSS are sampled throughout;
// the JSON line printed holds the sizes, the times, and each process's RSS growth over its idle
// level against the 64 MB target. Exits non-zero when a target is missed.

const args = process.argv.slice(2);
const value = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};
const moduleMb = Number(value('mb', '200'));
if (!Number.isInteger(moduleMb) || moduleMb < 1 || moduleMb > 250) throw new Error('--mb must be an integer from 1 to 250');
const TARGET_RSS_GROWTH_MB = 64;
const MB = 1024 * 1024;
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const adminToken = randomBytes(32).toString('hex');
const children: ChildProcess[] = [];
let stopping = false;

function start(name: string, pkg: string, env: Record<string, string>): ChildProcess {
  const out = openSync(join(tmpdir(), `changeover-bench-${name}.log`), 'w');
  const child = spawn(process.execPath, [join(root, pkg, 'dist/main.js')], { env: { ...process.env, ...env }, stdio: ['ignore', out, out] });
  child.once('exit', (code, signal) => {
    if (!stopping) process.stderr.write(`${name} exited (${signal ?? code}) during the benchmark: see ${join(tmpdir(), `changeover-bench-${name}.log`)}\n`);
  });
  children.push(child);
  return child;
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

/** Samples a process's RSS every 20 ms until stopped; returns the highest seen. */
function sampler(pid: number): { stop(): Promise<number> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      // A process that died is reported by its exit; its peak so far stands.
      const now = await rssMb(pid).catch(() => null);
      if (now === null) break;
      peak = Math.max(peak, now);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return peak;
    },
  };
}

/** Writes the image to disk as a stream: a random module, its signed manifest, update.json. */
async function buildImage(dir: string): Promise<{ file: string; moduleBytes: number; digest: string; manifest: PackageManifest; publicKeyPem: string }> {
  const blobFile = join(dir, 'module.bin');
  const hash = createHash('sha256');
  const moduleBytes = moduleMb * MB;
  await pipeline(
    Readable.from(
      (function* () {
        for (let left = moduleBytes; left > 0; left -= MB) {
          const chunk = randomBytes(Math.min(MB, left));
          hash.update(chunk);
          yield chunk;
        }
      })(),
    ),
    createWriteStream(blobFile),
  );
  const digest = `sha256:${hash.digest('hex')}`;
  const manifest: PackageManifest = { name: 'bench-image', version: '1.0.0', description: 'image import benchmark', modules: [{ name: 'payload', version: '1.0.0', processorType: 'any', size: moduleBytes, digest, dependsOn: [], requires: {} }], requires: {}, provides: [], consumes: [] };
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const signed = signManifest(manifest, privateKey, 'bench');
  const update = { description: 'bench image', targets: [{ nodes: ['bench-1'], packages: [{ name: 'bench-image', version: '1.0.0' }] }] };
  const file = join(dir, 'image.tar.gz');
  const tar = tarPack();
  const written = pipeline(tar, createGzip({ level: 1 }), createWriteStream(file));
  const blobPath = `blobs/${digest.slice(7)}`;
  await new Promise<void>((ok, fail) => {
    const entry = tar.entry({ name: blobPath, size: moduleBytes }, (e) => (e ? fail(e) : ok()));
    createReadStream(blobFile).pipe(entry);
  });
  tar.entry({ name: 'packages/bench-image@1.0.0.json' }, JSON.stringify(signed));
  tar.entry({ name: 'update.json' }, JSON.stringify({ update, packages: ['packages/bench-image@1.0.0.json'], blobs: { [digest]: blobPath } }));
  tar.finalize();
  await written;
  await rm(blobFile);
  return { file, moduleBytes, digest, manifest, publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

async function ready(url: string, what: string) {
  await waitFor(what, async () => (await fetch(url).catch(() => null))?.ok === true, { timeoutMs: 60_000, intervalMs: 200 });
}

async function main() {
  const dir = await mkdtemp(join(tmpdir(), 'changeover-bench-image-'));
  const [db, nats] = await Promise.all([createTestDatabase('bench_image'), startNats()]);
  try {
    const image = await buildImage(dir);
    const imageBytes = (await stat(image.file)).size;
    const [registryPort, rolloutPort] = await Promise.all([freePort(), freePort()]);
    const common = { DATABASE_URL: db.url, NATS_URL: nats.url, LOG_LEVEL: 'warn', CHANGEOVER_ADMIN_TOKEN: adminToken, OTEL_SDK_DISABLED: 'true' };
    const registry = start('image-registry', 'services/registry', { ...common, REGISTRY_HTTP_PORT: String(registryPort), REGISTRY_HTTP_HOST: '127.0.0.1', REGISTRY_RELAY: 'false', REGISTRY_TRUST_ROOTS: JSON.stringify({ bench: image.publicKeyPem }) });
    await ready(`http://127.0.0.1:${registryPort}/health/ready`, 'the registry');
    const rollout = start('image-rollout', 'services/rollout', { ...common, ROLLOUT_HTTP_PORT: String(rolloutPort), ROLLOUT_HTTP_HOST: '127.0.0.1', ROLLOUT_REGISTRY_TIMEOUT_MS: '600000', ROLLOUT_INSTANCE_ID: 'bench-image' });
    await ready(`http://127.0.0.1:${rolloutPort}/health/ready`, 'the rollout service');
    // The target node: a real agent, trusting the publisher key, saying hello to the registry.
    const stateDir = join(dir, 'agent-state');
    await mkdir(stateDir, { recursive: true });
    const agent = start('image-agent', 'services/node-agent', { NATS_URL: nats.url, LOG_LEVEL: 'warn', OTEL_SDK_DISABLED: 'true', NODE_ID: 'bench-1', NODE_CLASS: 'bench', AGENT_STATE_DIR: stateDir, AGENT_TRUST_ROOTS: JSON.stringify({ bench: image.publicKeyPem }), AGENT_MIN_FREE_DISK_MB: '1' });
    const api = (path: string, init: RequestInit = {}) => fetch(`http://127.0.0.1:${path}`, { ...init, headers: { authorization: `Bearer ${adminToken}`, ...(init.headers ?? {}) } });
    await waitFor('bench-1 registered', async () => {
      const res = await api(`${registryPort}/nodes?status=active&limit=10`);
      return res.ok && (await res.text()).includes('bench-1');
    }, { timeoutMs: 60_000, intervalMs: 200 });
    const pids = { registry: registry.pid!, rollout: rollout.pid!, agent: agent.pid! };
    const idle = { registry: await rssMb(pids.registry), rollout: await rssMb(pids.rollout), agent: await rssMb(pids.agent) };
    const samplers = { registry: sampler(pids.registry), rollout: sampler(pids.rollout), agent: sampler(pids.agent) };
    const began = performance.now();
    const policy = encodeURIComponent(JSON.stringify({ changeoverTimeoutMs: 600_000 }));
    const res = await api(`${rolloutPort}/rollouts/from-image?rolloutId=bench-image&policy=${policy}`, {
      method: 'POST',
      headers: { 'content-type': 'application/gzip', 'content-length': String(imageBytes) },
      body: Readable.toWeb(createReadStream(image.file)) as unknown as ReadableStream,
      duplex: 'half',
      signal: AbortSignal.timeout(600_000),
    } as RequestInit & { duplex: 'half' });
    const answer = await res.text();
    const importMs = performance.now() - began;
    if (res.status !== 201) throw new Error(`from-image answered ${res.status}: ${answer.slice(0, 400)}`);
    const created = JSON.parse(answer) as { rolloutId: string; status: string };
    // The rollout to its end: vote, commit, the agent's fetch of the module, changeover, report.
    type Shown = { status: string; failures?: { nodeId: string; code: string; message: string }[] };
    let shown: Shown = { status: created.status };
    await waitFor('the rollout to end', async () => {
      const r = await api(`${rolloutPort}/rollouts/${created.rolloutId}`);
      if (r.ok) shown = (await r.json()) as Shown;
      return ['completed', 'failed', 'aborted', 'cancelled', 'blocked', 'paused'].includes(shown.status);
    }, { timeoutMs: 900_000, intervalMs: 250 });
    const totalMs = performance.now() - began;
    const peak = { registry: await samplers.registry.stop(), rollout: await samplers.rollout.stop(), agent: await samplers.agent.stop() };
    // What the agent installed: the active package in its state file, the module file hashed from disk.
    // A failed rollout may have left neither: then nothing is installed, and the line says so.
    const state = (await readFile(join(stateDir, 'state.json'), 'utf8').then(JSON.parse, () => ({ state: { active: [] } }))) as { state: { active: { manifest: { name: string; version: string } }[] } };
    const blobFile = join(stateDir, 'modules', image.digest.slice('sha256:'.length));
    const onDisk = createHash('sha256');
    let installedBytes = 0;
    try {
      for await (const chunk of createReadStream(blobFile)) {
        installedBytes += (chunk as Buffer).length;
        onDisk.update(chunk as Buffer);
      }
    } catch {
      installedBytes = 0;
    }
    const installed = {
      active: state.state.active.map((p) => `${p.manifest.name}@${p.manifest.version}`),
      bytes: installedBytes,
      digestOk: `sha256:${onDisk.digest('hex')}` === image.digest,
    };
    const growth = { registry: peak.registry - idle.registry, rollout: peak.rollout - idle.rollout, agent: peak.agent - idle.agent };
    const round = (n: number) => Math.round(n * 10) / 10;
    const of = (k: keyof typeof idle) => ({ idleRssMb: round(idle[k]), peakRssMb: round(peak[k]), rssGrowthMb: round(growth[k]) });
    const completed = shown.status === 'completed' && installed.digestOk && installed.bytes === image.moduleBytes && installed.active.includes('bench-image@1.0.0');
    const met = completed && Object.values(growth).every((g) => g < TARGET_RSS_GROWTH_MB);
    process.stdout.write(
      `${JSON.stringify({
        bench: 'image-import',
        moduleBytes: image.moduleBytes,
        imageBytes,
        importMs: Math.round(importMs),
        importMbPerS: round(imageBytes / MB / (importMs / 1000)),
        rolloutMs: Math.round(totalMs - importMs),
        totalMs: Math.round(totalMs),
        rollout: { id: created.rolloutId, status: shown.status, ...(shown.failures?.length ? { failures: shown.failures } : {}) },
        installed,
        registry: of('registry'),
        rolloutService: of('rollout'),
        agent: of('agent'),
        rssGrowthMb: round(Math.max(...Object.values(growth))),
        target: { rssGrowthMb: `< ${TARGET_RSS_GROWTH_MB}`, each: ['registry', 'rolloutService', 'agent'] },
        met,
      })}\n`,
    );
    if (!met) process.exitCode = 1;
  } finally {
    stopping = true;
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
    await nats.stop();
    await db.drop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();

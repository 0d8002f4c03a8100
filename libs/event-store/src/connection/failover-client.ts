import { ChangeoverError } from '@changeover/contracts';
import pg from 'pg';
import { PG_CONNECT_TIMEOUT_MS } from '../pg-timeouts.js';
import { needsFailover, parseDatabaseUrl, type DatabaseHost, type DatabaseTarget } from './database-url.js';

// node-postgres reads one host. A multi-host DATABASE_URL is served by a pg.Client subclass that,
// when it connects, asks a per-URL resolver for the current primary and points itself at it; pools
// (pg.Pool's and TypeORM's) take it through their `Client` option, so every new pooled connection
// lands on the primary the resolver knows, and after a failover on the new one. The resolver probes
// the hosts in the URL's order (SHOW transaction_read_only) and keeps the first that fits; a refused
// connection, a dropped one or a read-only error forgets it, so the next connection probes again.

const READ_ONLY = '25006';

function pgCodeOf(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
}

function describe(h: DatabaseHost): string {
  return `${h.host}:${h.port}`;
}

/** Which host of a DATABASE_URL is the one to use now (the primary, for read-write). */
export class PrimaryResolver {
  private current: DatabaseHost | undefined;
  private probing: Promise<DatabaseHost> | undefined;
  /** How often a probe picked a host other than the previous one (a failover seen by this process). */
  switches = 0;
  private last: DatabaseHost | undefined;

  constructor(readonly target: DatabaseTarget) {}

  /** The known host, or the first in order that answers (and is read-write when asked). */
  primary(): Promise<DatabaseHost> {
    if (this.current) return Promise.resolve(this.current);
    this.probing ??= this.probe().finally(() => (this.probing = undefined));
    return this.probing;
  }

  /** Whether a probe since has chosen another host than `host` (a connection to it is to the old primary). */
  movedFrom(host: DatabaseHost): boolean {
    return this.current !== undefined && this.current !== host;
  }

  /** Forgets `host` if it is the known one: the next connection probes the hosts again. */
  forget(host: DatabaseHost): void {
    if (this.current === host) this.current = undefined;
  }

  private async probe(): Promise<DatabaseHost> {
    const failures: string[] = [];
    for (const host of this.target.hosts) {
      const client = new pg.Client({ connectionString: this.target.singleHostUrl, connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS });
      pointAt(client, host);
      client.on('error', () => undefined);
      try {
        await client.connect();
        if (this.target.targetSessionAttrs === 'read-write') {
          const { rows } = await client.query<{ transaction_read_only: string }>('SHOW transaction_read_only');
          if (rows[0]?.transaction_read_only !== 'off') {
            failures.push(`${describe(host)} (read-only)`);
            continue;
          }
        }
        if (this.last && (this.last.host !== host.host || this.last.port !== host.port)) this.switches++;
        this.last = host;
        this.current = host;
        return host;
      } catch (e) {
        failures.push(`${describe(host)} (${e instanceof Error ? e.message : String(e)})`);
      } finally {
        await client.end().catch(() => undefined);
      }
    }
    const wanted = this.target.targetSessionAttrs === 'read-write' ? 'read-write Postgres' : 'Postgres';
    throw new ChangeoverError('UNAVAILABLE', `no ${wanted} among ${failures.join(', ')}`, { hosts: this.target.hosts.map(describe) });
  }
}

/** A pg.Client's own host and port, before it connects (the connection string's first host is replaced). */
function pointAt(client: pg.Client, host: DatabaseHost): void {
  const c = client as unknown as { host: string; port: number; connectionParameters: { host: string; port: number } };
  c.host = host.host;
  c.port = host.port;
  c.connectionParameters.host = host.host;
  c.connectionParameters.port = host.port;
}

type ClientClass = typeof pg.Client;

/**
 * node-postgres emits a dropped connection as an 'error' event, and a pool removes its listener while
 * the client is checked out: a Postgres restart mid-transaction would crash the process. The query in
 * flight gets the same error, and the pool discards the client when it comes back, so the event needs
 * no more than a listener.
 */
class DropTolerantClient extends pg.Client {
  constructor(config?: string | pg.ClientConfig) {
    super(config);
    this.on('error', () => undefined);
  }
}

function failoverClientClass(resolver: PrimaryResolver): ClientClass {
  class FailoverClient extends DropTolerantClient {
    override connect(): Promise<pg.Client>;
    override connect(callback: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): void;
    override connect(callback?: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): Promise<pg.Client> | void {
      const done = this.connectToPrimary();
      if (!callback) return done;
      const cb = callback as (err: Error | null, c?: pg.Client) => void;
      done.then((c) => cb(null, c), (e: Error) => cb(e));
    }

    private async connectToPrimary(): Promise<pg.Client> {
      const host = await resolver.primary();
      pointAt(this, host);
      try {
        await super.connect();
        if (resolver.target.targetSessionAttrs === 'read-write') {
          // The known primary may have been demoted since it was probed.
          const { rows } = await super.query<{ transaction_read_only: string }>('SHOW transaction_read_only');
          if (rows[0]?.transaction_read_only !== 'off') throw new ChangeoverError('UNAVAILABLE', `Postgres ${describe(host)} is read-only now`, { host: describe(host) });
        }
      } catch (e) {
        resolver.forget(host);
        await this.end().catch(() => undefined);
        throw e instanceof ChangeoverError ? e : new ChangeoverError('UNAVAILABLE', `cannot connect to Postgres ${describe(host)}: ${e instanceof Error ? e.message : String(e)}`, { host: describe(host) });
      }
      // A lost connection or a write refused as read-only: the host is no longer the primary to use.
      this.on('error', () => resolver.forget(host));
      const query = this.query;
      this.query = ((...args: unknown[]) => {
        // Another host is the primary now: end this connection, so this query fails through node-postgres'
        // own path (promise or callback) and the pool drops the client instead of reading a stale server.
        if (resolver.movedFrom(host)) void this.end().catch(() => undefined);
        const result = (query as (...a: unknown[]) => unknown).apply(this, args);
        if (result instanceof Promise) {
          result.catch((e: unknown) => {
            if (pgCodeOf(e) !== READ_ONLY) return;
            resolver.forget(host);
            void this.end().catch(() => undefined);
          });
        }
        return result;
      }) as typeof query;
      return this;
    }
  }
  return FailoverClient;
}

const resolvers = new Map<string, { resolver: PrimaryResolver; Client: ClientClass }>();

function failoverOf(target: DatabaseTarget): { resolver: PrimaryResolver; Client: ClientClass } {
  const key = `${target.hosts.map(describe).join(',')}|${target.singleHostUrl}|${target.targetSessionAttrs}`;
  let entry = resolvers.get(key);
  if (!entry) {
    const resolver = new PrimaryResolver(target);
    entry = { resolver, Client: failoverClientClass(resolver) };
    resolvers.set(key, entry);
  }
  return entry;
}

/** The resolver a multi-host URL's connections share in this process (undefined for a plain URL). */
export function primaryResolverOf(url: string): PrimaryResolver | undefined {
  const target = parseDatabaseUrl(url, 'url');
  return needsFailover(target) ? failoverOf(target).resolver : undefined;
}

/**
 * node-postgres settings (pg.Pool or pg.Client config) for a DATABASE_URL of one or several hosts:
 * a plain URL as it is, a multi-host one as its first host plus the failover `Client`; either way a
 * `Client` that survives its connection dropping.
 */
export function pgConnection(url: string): { connectionString: string; Client: ClientClass } {
  const target = parseDatabaseUrl(url, 'url');
  if (!needsFailover(target)) return { connectionString: url, Client: DropTolerantClient };
  return { connectionString: target.singleHostUrl, Client: failoverOf(target).Client };
}

/** A single pg.Client (LISTEN, advisory locks) that connects to the URL's current primary. */
export function createPgClient(url: string, config: Omit<pg.ClientConfig, 'connectionString'> = {}): pg.Client {
  const { connectionString, Client } = pgConnection(url);
  return new Client({ ...config, connectionString });
}

/** TypeORM DataSource settings (url and the pool's extra options) for a DATABASE_URL of one or several hosts. */
export function typeormConnection(url: string, extra: Record<string, unknown> = {}): { url: string; extra: Record<string, unknown> } {
  const { connectionString, Client } = pgConnection(url);
  return { url: connectionString, extra: { ...extra, Client } };
}

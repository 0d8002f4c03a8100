import { readFileSync } from 'node:fs';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { serviceConnectionOptions } from '@changeover/nats-auth';
import { EventStore, startOutboxRelay } from '@changeover/event-store';
import { changeoverMetrics, createLogger, onScrape, type Logger } from '@changeover/telemetry';
import { ClassService } from './classes/class.service.js';
import type { RegistryConfig } from './config.js';
import { openDatabase } from './db/data-source.js';
import { SqlPool } from './db/sql.js';
import { RegistryEvents } from './events/registry.events.js';
import { ImageService } from './images/image.service.js';
import { serveRegistryNats } from './nats/registry.nats.js';
import { NodeRepository } from './nodes/node.repository.js';
import { NodeIdentityService } from './nodes/node-identity.js';
import { NodeService } from './nodes/node.service.js';
import { Counters } from './observability.js';
import { BlobStore } from './packages/blob.store.js';
import { openImageUploads } from '@changeover/messaging';
import { PackageRepository } from './packages/package.repository.js';
import { PackageService } from './packages/package.service.js';
import type { RegistryDomain } from './registry.domain.js';
import { startRolloutRefs } from './packages/rollout-refs.js';
import { startRolloutInventories } from './nodes/rollout-inventories.js';
import { SelectionService } from './selection/selection.service.js';
import { startHttp, type HttpServer } from './http/http.app.js';
import { openHttpAuth, withStatementTimeout } from '@changeover/http-auth';
import { RateLimiter } from '@changeover/messaging';
import { readinessOf } from './http/readiness.js';

export interface RunningRegistry {
  domain: RegistryDomain;
  /** Plain SQL on the registry database. */
  db: SqlPool;
  nc: NatsConnection;
  events: EventStore;
  /** The port the REST API listens on (useful when configured as 0). */
  httpPort: number;
  /** Writes buffered heartbeats and marks stale nodes now (tests; otherwise periodic). */
  tick(now?: Date): Promise<void>;
  close(): Promise<void>;
}

/** Starts the registry: database (migrated), NATS, object store, REST and NATS APIs, the periodic sweep. */
export async function startRegistry(input: RegistryConfig, opts: { logger?: Logger } = {}): Promise<RunningRegistry> {
  // Every connection of the registry gets a statement_timeout: no query waits for ever.
  const config = { ...input, databaseUrl: withStatementTimeout(input.databaseUrl, input.auth.statementTimeoutMs) };
  const log = opts.logger ?? createLogger('registry', { level: config.logLevel });
  const cleanups: (() => Promise<unknown>)[] = [];
  let closing: Promise<void> | undefined;
  let migrated = false;
  const closeAll = () =>
    (closing ??= (async () => {
      for (const c of [...cleanups].reverse()) await c().catch((err: unknown) => log.error({ err }, 'shutdown step failed'));
    })());
  try {
    const nc = await connect({ servers: config.natsServers, name: 'changeover-registry', maxReconnectAttempts: -1, noAsyncTraces: true, ...(config.natsCreds ? serviceConnectionOptions(readFileSync(config.natsCreds)) : {}) });
    cleanups.push(() => nc.drain());
    // TypeORM migrates the schema and is closed again; the service itself speaks plain SQL.
    await (await openDatabase(config.databaseUrl)).destroy();
    const db = SqlPool.open(config.databaseUrl);
    cleanups.push(() => db.close());
    const store = await EventStore.connect({ url: config.databaseUrl, migrate: true });
    cleanups.push(() => store.close());
    // Both schemas (registry tables and event store) are migrated by now: readiness reports it.
    migrated = true;

    const counters = new Counters();
    const events = new RegistryEvents(store, log, counters);
    const blobs = await BlobStore.open(nc, undefined, config.streamReplicas);
    // Clients put update images here before asking for their import (import-image names the object).
    await openImageUploads(nc, undefined, config.streamReplicas);
    const packages = new PackageService(new PackageRepository(db), blobs, events, { ...config }, counters, log);
    const nodeRepo = new NodeRepository(db);
    const nodes = new NodeService(nodeRepo, events, config, counters, log);
    const identities = new NodeIdentityService(db, config.natsAuthority, { natsServers: config.natsServers, credsTtlS: config.nodeCredsTtlS }, counters, log);
    // A server that missed a revocation push (or restarted from an old preload) gets the stored list again.
    if (identities.enabled) await identities.pushStored().catch((err: unknown) => log.error({ err }, 'revocation list could not be pushed to NATS at start-up'));
    const domain: RegistryDomain = {
      packages,
      blobs,
      nodes,
      identities,
      classes: new ClassService(db, packages, events),
      selection: new SelectionService(packages, nodeRepo),
      images: new ImageService(packages, config, counters),
      counters,
      maxModuleBytes: config.maxModuleBytes,
      maxImageBytes: config.maxImageBytes,
    };

    if (config.relay) {
      // Relays every committed event to JetStream CHANGEOVER_EVENTS (shared checkpoint; duplicates are dropped by Nats-Msg-Id).
      const relay = await startOutboxRelay({ store, nats: nc, replicas: config.streamReplicas, onError: (err) => log.error({ err }, 'outbox relay failed') });
      cleanups.push(() => relay.stop());
      // changeover_outbox_lag_events: read from the relay at each scrape.
      const off = onScrape(() => changeoverMetrics.outboxLag.set(relay.lag()));
      cleanups.push(async () => off());
    }
    const refs = await startRolloutRefs(nc, db, log);
    cleanups.push(() => refs.stop());
    // Each node's inventory after a changeover or regression, from the rollout's events.
    const rolloutInventories = await startRolloutInventories(nc, nodes, counters, log);
    cleanups.push(() => rolloutInventories.stop());
    // One enrollment budget for NATS and REST together.
    const enrollLimiter = new RateLimiter(config.enrollRate);
    const nats = serveRegistryNats(nc, domain, { queue: config.queueGroup, maxImageBytes: config.maxImageBytes, maxMessageBytes: config.maxMessageBytes, enrollLimiter, helloRate: config.helloRate, logger: log });
    // Reports wait for their batch's write without a handler waiting on them: once the subscriptions
    // stop taking messages, whatever they handed over is written before the database closes.
    cleanups.push(async () => {
      await nats.stop();
      await nodes.flushHeartbeats();
      await nodes.flushInventories();
      await nodes.flushHellos();
    });

    const tick = async (now = new Date()) => {
      await nodes.sweep(now);
    };
    const flushTimer = setInterval(() => void nodes.flushHeartbeats().catch((err: unknown) => log.error({ err }, 'heartbeat flush failed')), config.heartbeatFlushMs);
    const sweepTimer = setInterval(() => void tick().catch((err: unknown) => log.error({ err }, 'stale sweep failed')), config.sweepIntervalMs);
    cleanups.push(async () => {
      clearInterval(flushTimer);
      clearInterval(sweepTimer);
    });

    const auth = await openHttpAuth({ service: 'registry', databaseUrl: config.databaseUrl, config: config.auth, onAuditError: (err) => log.warn({ err }, 'audit log write failed'), warn: (m) => log.warn(m) });
    cleanups.push(() => auth.close());
    const http: HttpServer = await startHttp(domain, { port: config.httpPort, host: config.httpHost, logger: log, auth, enrollLimiter, readiness: readinessOf({ ping: () => db.query('SELECT 1'), natsClosed: () => nc.isClosed(), migrated: () => migrated }) });
    cleanups.push(() => http.close());
    log.info({ httpPort: http.port, nats: config.natsServers }, 'registry started');
    return { domain, db, nc, events: store, httpPort: http.port, tick, close: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** Alias of startRegistry (the app factory name tests and the demo use). */
export const createRegistryApp = startRegistry;

import 'reflect-metadata';
import { Module, type DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { EventStore, startOutboxRelay } from '@changeover/event-store';
import { encode, RolloutPolicy } from '@changeover/contracts';
import { changeoverMetrics, createLogger, metricsHandler, type Logger } from '@changeover/telemetry';
import type { RolloutConfig } from './config.js';
import { migrateRollout } from './infra/rollout.migration.js';
import { LeaseStore } from './leases/lease-store.js';
import { LeaseKeeper } from './leases/lease-keeper.js';
import { natsRegistry, type RegistryPort } from './nats/registry-client.js';
import { CommandSender } from './nats/command-sender.js';
import { APPENDED_SUBJECT, startAgentIntake } from './nats/agent-intake.js';
import { RolloutRunner, type Timers } from './workflow/rollout.runner.js';
import { RECONCILE_ACTOR, sharedClassLookups, startClassReconcile } from './reconcile/class-reconcile.js';
import { ClusterRollouts } from './reconcile/cluster-rollouts.js';
import { setRolloutGauges } from './workflow/rollout.metrics.js';
import { Planner } from './planning/planner.js';
import { RolloutCommands } from './rollout/rollout.commands.js';
import { RolloutsTable } from './queries/rollouts-table.js';
import { AuditLog } from './queries/audit-log.js';
import { HTTP_LIMITS, RolloutController, type HttpLimits } from './http/rollout.controller.js';
import { authenticateBeforeBody, openHttpAuth, withStatementTimeout, type HttpAuth } from '@changeover/http-auth';
import { bodyErrors, ErrorFilter } from './http/error.filter.js';
import { READINESS, readinessOf, type Readiness } from './http/readiness.js';
import { ClusterVersionController } from './cluster-version/cluster-version.controller.js';
import { ClusterVersionService } from './cluster-version/cluster-version.service.js';
import { GroupLogs } from './cluster-version/group-logs.js';
import { CONSOLE, ConsoleController, type ConsoleDeps } from './console/console.controller.js';
import { loadConsoleApp } from './console/console.assets.js';
import { listFleet } from './console/fleet.query.js';
import { RolloutStreams } from './console/rollout-stream.js';
import { ClassWindowsStore } from './schedules/class-windows.js';
import { ClassWindowsController } from './schedules/class-windows.controller.js';

@Module({})
class RolloutHttpModule {
  static with(api: RolloutCommands, auth: HttpAuth, readiness: Readiness, limits: HttpLimits, cluster: ClusterVersionService, console: ConsoleDeps, windows: ClassWindowsStore): DynamicModule {
    return { module: RolloutHttpModule, imports: [auth.tokensModule], controllers: [RolloutController, ClusterVersionController, ConsoleController, ClassWindowsController], providers: [{ provide: RolloutCommands, useValue: api }, { provide: READINESS, useValue: readiness }, { provide: HTTP_LIMITS, useValue: limits }, { provide: ClusterVersionService, useValue: cluster }, { provide: CONSOLE, useValue: console }, { provide: ClassWindowsStore, useValue: windows }] };
  }
}

export interface RunningRollout {
  httpPort: number;
  instanceId: string;
  runner: RolloutRunner;
  close(): Promise<void>;
  /** Stops at once without handing leases back, as a killed process would (for takeover tests). */
  crash(): Promise<void>;
}

/**
 * After a reconnect (a NATS server of the cluster went down under this instance), the agents' reports
 * sent meanwhile are lost: once the subscriptions are back on the server (the flush), each owned rollout
 * sends again what its nodes still owe. Ends with the connection.
 */
async function resendOnReconnect(nc: NatsConnection, runner: RolloutRunner, log: Logger): Promise<void> {
  for await (const s of nc.status()) {
    if (s.type !== 'reconnect') continue;
    log.info({ server: s.server }, 'NATS reconnected; re-sending what owned rollouts are owed');
    await nc.flush().then(() => runner.resendOwed('reconnect')).catch((e: unknown) => log.warn({ err: e }, 're-sending after a reconnect failed'));
  }
}

/** Starts one rollout-service instance: migrations, NATS intake, lease keeping, REST. */
export async function startRollout(input: RolloutConfig, opts: { registry?: RegistryPort; clock?: () => Date; timers?: Timers } = {}): Promise<RunningRollout> {
  // Every connection of this service gets a statement_timeout: no query waits for ever.
  const config = { ...input, databaseUrl: withStatementTimeout(input.databaseUrl, input.auth.statementTimeoutMs) };
  const log = createLogger('rollout', { level: config.logLevel });
  const clock = opts.clock ?? (() => new Date());
  let migrated = false;
  await migrateRollout(config.databaseUrl);
  // Readiness reports the schema as migrated only from here on.
  migrated = true;
  const store = await EventStore.connect({ url: config.databaseUrl, poolSize: 6 });
  const nc = await connect({ servers: config.natsServers, name: `rollout-${config.instanceId}`, maxReconnectAttempts: -1, noAsyncTraces: true, ...(config.natsCreds ? { authenticator: credsAuthenticator(readFileSync(config.natsCreds)) } : {}) });
  const registry = opts.registry ?? natsRegistry(nc, config.registryTimeoutMs, log);
  const sender = new CommandSender(nc, (refs) => registry.getPackages(refs));
  const leases = new LeaseStore(store.pool, config.instanceId, config.leaseMs);
  const table = new RolloutsTable(store.pool, (e) => log.warn({ err: e }, 'projection update failed'));
  const runner = new RolloutRunner({
    store,
    send: (state, action) => sender.send(state, action),
    leases,
    appended: (state, version, byOwner) => {
      table.save(state, version);
      if (!byOwner) nc.publish(APPENDED_SUBJECT, encode({ rolloutId: state.rolloutId }));
    },
    settled: (state, version) => table.saveNow(state, version),
    forget: (id) => sender.forget(id),
    providedElsewhere: (req) => registry.providedApis(req),
    clock,
    ...(opts.timers ? { timers: opts.timers } : {}),
    log,
  });
  const auditLog = new AuditLog(store.pool);
  const classWindows = new ClassWindowsStore(store.pool, clock);
  const planner = new Planner(registry, (to, body) => sender.publish(to, 'propose', body));
  const keeper = new LeaseKeeper(leases, runner, config.leaseMs, log);
  const api = new RolloutCommands({ runner, store, registry, planner, acquire: (id) => keeper.acquire(id), list: (q) => table.list(q), audit: (q) => auditLog.list(q), row: (id) => table.get(id), clock, windows: (classIds) => classWindows.forClasses(classIds) });
  const intake = startAgentIntake(nc, { runner, planner, log, clock, helloRate: config.helloRate });
  const clusterRollouts = config.reconcile ? new ClusterRollouts(store.pool, config.databaseUrl) : undefined;
  if (clusterRollouts) {
    intake.push(
      startClassReconcile(nc, {
        classPackages: sharedClassLookups((classId) => registry.classPackages(classId), 1000),
        inActiveRollout: (nodeId) => runner.inActiveRollout(nodeId),
        coveringRollout: (nodeId) => clusterRollouts.covering(nodeId),
        exclusive: (nodeId, work) => clusterRollouts.exclusive(nodeId, work),
        create: (req) => api.create(req, RECONCILE_ACTOR),
        policy: RolloutPolicy.parse({}),
        log,
        helloRate: config.helloRate,
      }),
    );
  }
  await nc.flush();
  void resendOnReconnect(nc, runner, log);
  // Cluster infrastructure version (DESIGN §6): resumes an adjustment a previous process was killed in.
  const cluster = new ClusterVersionService({ store, pool: store.pool, nc, logs: await GroupLogs.open(nc, config.streamReplicas), registryTimeoutMs: config.registryTimeoutMs, validateTimeoutMs: config.validateTimeoutMs, clock, log, ...(config.faultAt ? { faultAt: config.faultAt } : {}) });
  cluster.start();
  // Every event reaches JetStream CHANGEOVER_EVENTS off the critical path; duplicates from two instances are dropped by event id.
  const relay = config.relay ? await startOutboxRelay({ store, nats: nc, replicas: config.streamReplicas, onError: (e) => log.warn({ err: e }, 'outbox relay error') }) : undefined;
  keeper.start();

  const auth = await openHttpAuth({ service: 'rollout', databaseUrl: config.databaseUrl, config: config.auth, onAuditError: (e) => log.warn({ err: e }, 'audit log write failed'), warn: (m) => log.warn(m) });
  const readiness = readinessOf({ ping: () => store.pool.query('SELECT 1'), natsClosed: () => nc.isClosed(), migrated: () => migrated });
  // The operator console's live page: each rollout's stored events as server-sent events, bounded in number and time.
  const streams = new RolloutStreams({ store, show: (id) => api.show(id), changed: (id, after, waitMs) => runner.changed(id, after, waitMs), owned: (id) => runner.isOwned(id), maxStreams: config.streams.max, maxMs: config.streams.maxMs, keepAliveMs: 15_000, pollMs: 1000, log });
  const consoleApp = loadConsoleApp();
  if (consoleApp.size === 0) log.warn('the operator console is not built: /console answers without its modules (npx tsc -b services/rollout)');
  const consoleDeps: ConsoleDeps = { app: consoleApp, streams, fleet: (q) => listFleet(nc, config.registryTimeoutMs, q) };
  const app = await NestFactory.create<NestExpressApplication>(RolloutHttpModule.with(api, auth, readiness, { maxImageBytes: config.maxImageBytes }, cluster, consoleDeps, classWindows), { logger: false, bodyParser: false });
  // No body is read before its sender has shown a valid token.
  app.use(authenticateBeforeBody(auth.authenticator, (res, err) => bodyErrors(err, undefined, res, undefined)));
  app.useBodyParser('json', { limit: config.maxBodyBytes });
  app.use(bodyErrors);
  app.useGlobalFilters(new ErrorFilter());
  auth.install(app);
  // Gauges are read at scrape time: the projection for rollouts by state, owned rollouts for node phases, the relay for lag.
  const refreshGauges = async () => {
    if (relay) changeoverMetrics.outboxLag.set(relay.lag());
    const owned = runner.ownedIds().flatMap((id) => runner.stateOf(id)?.state ?? []);
    setRolloutGauges(await table.countByStatus(), owned);
  };
  app.getHttpAdapter().get('/metrics', (req: IncomingMessage, res: ServerResponse) =>
    void refreshGauges()
      .catch((e) => log.warn({ err: e }, 'metric gauges not refreshed'))
      .then(() => metricsHandler(req, res)),
  );
  await app.listen(config.httpPort, config.httpHost);
  const address = app.getHttpServer().address() as { port: number };
  log.info({ port: address.port, instance: config.instanceId }, 'rollout service listening');

  let closing: Promise<void> | undefined;
  const shutdown = (handBack: boolean) =>
    (closing ??= (async () => {
      await keeper.stop();
      const owned = runner.ownedIds();
      runner.close();
      if (handBack) await leases.expireAll(owned).catch(() => undefined);
      await Promise.all(intake.map((s) => s.stop()));
      await cluster.close();
      // Open event streams end first, or the HTTP server would wait on them.
      streams.closeAll();
      await app.close();
      await auth.close();
      await relay?.stop();
      await table.close();
      await clusterRollouts?.close().catch(() => undefined);
      await nc.drain().catch(() => undefined);
      await store.close();
    })());
  return { httpPort: address.port, instanceId: config.instanceId, runner, close: () => shutdown(true), crash: () => shutdown(false) };
}

import { platform, totalmem } from 'node:os';
import { basename, dirname, resolve } from 'node:path';
import { connect } from '@nats-io/transport-node';
import type { UnitTracer } from '@changeover/telemetry';
import type { AgentConfig } from './config.js';
import { AgentCore } from './core/agent-core.js';
import type { Log } from './core/ports.js';
import { ObjectStoreFetcher } from './fetch/object-store-fetcher.js';
import { adoptExternalCredentials } from './local-api/external-credentials.js';
import { LocalApiServer } from './local-api/local-api-server.js';
import type { CounterRegistry } from './metrics.js';
import { registryManifests } from './registry/manifest-source.js';
import { ChildProcessRuntime } from './runtime/child-runtime.js';
import { FsStore } from './store/fs-store.js';
import { ModuleGc } from './store/module-gc.js';
import { contractOs } from './host-platform.js';
import { GroupLogStore } from './groups/group-log.js';
import { GroupManager } from './groups/group-manager.js';
import { groupRouter } from './groups/group-routes.js';
import { RESTART_EXIT_CODE, SelfUpgrade } from './upgrade/self-upgrade.js';
import { receiveSockets, sendSockets } from './upgrade/socket-handover.js';
import { probationPassed } from './upgrade/probation.js';
import { agentConnectionOptions } from './transport/connection.js';
import { NatsFleet, natsSink } from './transport/nats-fleet.js';
import { loadTrustRoots, signatureVerifier } from './trust/signatures.js';

export interface RunningAgent {
  core: AgentCore;
  /** The NATS connection is open (it may be reconnecting; closed means the agent is cut off for good). */
  connected(): boolean;
  stop(): Promise<void>;
}

/** One real node: file-system store, child processes, the local API on a Unix socket, NATS. */
export async function startRealAgent(config: AgentConfig, log: Log, counters: CounterRegistry, tracing?: UnitTracer): Promise<RunningAgent> {
  const trust = loadTrustRoots(config.AGENT_TRUST_ROOTS);
  if (!Object.keys(trust.roots).length) log.warn('AGENT_TRUST_ROOTS is empty: package signatures are not checked');
  const store = await FsStore.open(config.AGENT_STATE_DIR);
  // An agent the launcher started from an installed agent package runs a module file: it is never collected.
  const self = resolve(process.argv[1] ?? '');
  const ownModule = dirname(self) === resolve(store.modulesDir) ? [basename(self)] : [];
  const api = new LocalApiServer(config.AGENT_SOCKET, counters, log);
  await api.start();
  await adoptExternalCredentials(api, config.AGENT_STATE_DIR, config.AGENT_EXTERNAL_PROCESSES);
  const runtime = new ChildProcessRuntime({ store, api, log, counters, logs: { maxBytes: config.AGENT_LOG_MAX_BYTES, keep: config.AGENT_LOG_KEEP } });
  const nc = await connect({ servers: config.NATS_URL, name: `node-agent-${config.NODE_ID}`, maxReconnectAttempts: -1, noAsyncTraces: true, reconnectTimeWait: 500, waitOnFirstConnect: true, ...agentConnectionOptions(config) });
  const disk = await store.freeBytes();
  // Group membership (DESIGN §6): ordered logs on JetStream, served to processes under /v1/groups.
  const groups = new GroupManager(config.NODE_ID, config.AGENT_CLUSTER_VERSIONS, await GroupLogStore.open(nc, (config.AGENT_GROUP_APPENDS ?? (config.NATS_CREDS ? 'mediated' : 'direct')) === 'mediated' ? { mediated: { nodeId: config.NODE_ID, timeoutMs: config.AGENT_REGISTRY_TIMEOUT_MS } } : { replicas: config.NATS_STREAM_REPLICAS }), natsSink(nc, log), counters, log);
  api.groups = { route: groupRouter(groups), processGone: (processId) => groups.processGone(processId) };
  // An upgrade of the agent's own package: members leave, the agent exits for the launcher to start the new version.
  const upgrade = new SelfUpgrade({ stateDir: config.AGENT_STATE_DIR, agentPackage: config.AGENT_PACKAGE, agentVersion: config.AGENT_VERSION, sink: natsSink(nc, log), log, counters, store, groups: () => groups, restart: async () => {
    await stop({ handOver: true });
    process.exit(RESTART_EXIT_CODE);
  }, probation: () => probationPassed() });
  // Sockets the previous version handed over (a self-upgrade under the launcher), before its processes are adopted.
  runtime.adoptSockets(await receiveSockets(2000));
  await upgrade.load();
  const core = new AgentCore(
    {
      identity: { nodeId: config.NODE_ID, classId: config.NODE_CLASS, processorType: config.NODE_PROCESSOR_TYPE },
      store,
      fetcher: new ObjectStoreFetcher(nc, store),
      runtime,
      sink: upgrade.sink,
      manifests: registryManifests(nc, config.NODE_ID, config.AGENT_REGISTRY_TIMEOUT_MS),
      verifySignature: signatureVerifier(trust, config.AGENT_RETIRED_KEYS),
      minFreeBytes: config.AGENT_MIN_FREE_DISK_MB * 1024 * 1024,
      hygiene: new ModuleGc({ store, keepVersions: config.AGENT_KEEP_VERSIONS, inUse: () => [...runtime.digestsInUse(), ...ownModule], counters, log }),
      counters,
      log,
      tracing,
      onFault: config.AGENT_FAULT_AT
        ? (point) => {
            if (point === config.AGENT_FAULT_AT) process.kill(process.pid, 'SIGKILL');
          }
        : undefined,
    },
    {
      agentVersion: config.AGENT_VERSION,
      clusterVersions: config.AGENT_CLUSTER_VERSIONS,
      characteristics: { arch: config.NODE_PROCESSOR_TYPE, os: contractOs(platform()), memoryMb: Math.floor(totalmem() / 1048576), diskMb: Math.floor(disk / 1048576), labels: config.NODE_LABELS },
    },
  );
  // Recovery (an interrupted changeover is regressed) and the active set running before the node says hello.
  await core.start();
  const fleet = new NatsFleet(nc, [core], { nodeSubjects: 'own', heartbeatMs: config.AGENT_HEARTBEAT_MS, counters, log, validate: (_nodeId, cmd) => groups.validate(cmd) });
  fleet.start();
  void upgrade.resume(config.AGENT_UPGRADE_REJOIN_TIMEOUT_MS);
  return { core, connected: () => !nc.isClosed(), stop };

  async function stop(opts: { handOver?: boolean } = {}): Promise<void> {
    // Members leave their groups before the node goes (claim 5); they join again when it is back.
    await groups.leaveAll(`agent on ${config.NODE_ID} stopping`);
    groups.stop();
    await fleet.stop();
    if (opts.handOver) {
      // A self-upgrade: the module processes keep running and serving; the next version adopts them.
      const sent = await sendSockets(runtime.handOver(), 5000).catch((e: unknown) => {
        log.error('cannot hand the listening sockets over', { error: e instanceof Error ? e.message : String(e) });
        return false;
      });
      if (!sent) log.warn('listening sockets not handed over (no launcher channel): the next changeover of a listening module binds its port again');
    } else {
      await runtime.stopAll();
    }
    await api.stop();
    await nc.drain().catch(() => undefined);
  }
}

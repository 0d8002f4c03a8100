import type { NatsConnection } from '@nats-io/transport-node';
import { AgentCore, type AgentInfo } from '../core/agent-core.js';
import type { CoreOptions, Counters, Log, ReportSink } from '../core/ports.js';
import type { NodeState } from '../model/state.js';
import type { UnitTracer } from '@changeover/telemetry';
import { batchedNatsSink } from '../transport/batched-sink.js';
import { NatsFleet } from '../transport/nats-fleet.js';
import { draw, SimRuntime, SimStore, simFetcher, type SimRates } from './sim-runtime.js';

export interface SimFleetOptions extends SimRates {
  count: number;
  classId: string;
  prefix: string;
  /** Share of nodes that are arm64; the rest are x86_64. */
  armRatio: number;
  /** A share of nodes that report these labels besides `simulated=true` (e.g. `gpu=true`); none by default. */
  labelled?: { share: number; labels: Record<string, string> };
  agentVersion: string;
  clusterVersions: { min: number; max: number };
  heartbeatMs: number;
  counters: Counters;
  log: Log;
  sink?: ReportSink;
  /** Spans of the simulated nodes (none by default: a fleet sampled at 0 pays nothing for tracing). */
  tracing?: UnitTracer;
  /** The signature check of every node; none by default (a simulated fleet trusts every package). */
  verifySignature?: CoreOptions['verifySignature'];
  /** Hellos and heartbeats a second for the whole fleet (0 or absent: unpaced). */
  reportsPerSecond?: number;
}

export const simNodeId = (prefix: string, i: number) => `${prefix}-${i}`;

/** Simulated cores: the real protocol logic over in-memory ports (no NATS). */
export function createSimCores(opts: SimFleetOptions, sink: ReportSink): AgentCore[] {
  const cores: AgentCore[] = [];
  const verify = opts.verifySignature ?? (() => undefined);
  // One info object per kind of node: nodes with equal traits share it (and the packages selected for it).
  const info = (arch: 'x86_64' | 'arm64', extra: Record<string, string>): AgentInfo => ({ agentVersion: opts.agentVersion, clusterVersions: opts.clusterVersions, characteristics: { arch, os: 'linux', memoryMb: 2048, labels: { simulated: 'true', ...extra } } });
  const extra = opts.labelled?.labels ?? {};
  const infos = { x86_64: [info('x86_64', {}), info('x86_64', extra)], arm64: [info('arm64', {}), info('arm64', extra)] } as const;
  for (let i = 1; i <= opts.count; i++) {
    const nodeId = simNodeId(opts.prefix, i);
    const processorType = draw(nodeId, 'arch') < opts.armRatio ? 'arm64' : 'x86_64';
    const labelled = opts.labelled !== undefined && draw(nodeId, 'labels') < opts.labelled.share ? 1 : 0;
    const holder: { core?: AgentCore } = {};
    const state = (): NodeState => holder.core!.state;
    const core = new AgentCore(
      {
        identity: { nodeId, classId: opts.classId, processorType },
        store: new SimStore(state),
        fetcher: simFetcher,
        runtime: new SimRuntime(nodeId, opts, state),
        sink,
        verifySignature: verify,
        minFreeBytes: 0,
        counters: opts.counters,
        log: opts.log,
        tracing: opts.tracing,
      },
      infos[processorType][labelled],
    );
    holder.core = core;
    cores.push(core);
  }
  return cores;
}

/** `node-agent --simulate N`: N simulated nodes on one shared NATS connection. */
export async function startSimFleet(nc: NatsConnection, opts: SimFleetOptions): Promise<NatsFleet> {
  // The reports of all nodes go out in batches: one socket write per batch, not one per report.
  const batched = batchedNatsSink(nc, opts.log);
  const cores = createSimCores(opts, opts.sink ?? batched);
  for (const c of cores) await c.start();
  const fleet = new NatsFleet(nc, cores, { nodeSubjects: 'wildcard', heartbeatMs: opts.heartbeatMs, counters: opts.counters, log: opts.log, flushReports: batched.flush, ...(opts.reportsPerSecond ? { reportsPerSecond: opts.reportsPerSecond } : {}) });
  fleet.start();
  return fleet;
}

#!/usr/bin/env node
import { connect } from '@nats-io/transport-node';
import { loadConfig, type AgentConfig } from './config.js';
import { join } from 'node:path';
import { startHealthServer } from './health-server.js';
import { writeAtomic } from './store/atomic-file.js';
import { LAUNCH_FILES } from './upgrade/launcher-config.js';
import { createLog } from './log.js';
import { CounterRegistry } from './metrics.js';
import { startRealAgent } from './real-agent.js';
import { startSimFleet } from './simulate/sim-fleet.js';
import { readTelemetryEnv, startTelemetry, telemetryEnabled, unitTracer } from '@changeover/telemetry';
import { fleetConnectionOptions } from './transport/connection.js';
import { loadTrustRoots, signatureVerifier } from './trust/signatures.js';

async function main(): Promise<void> {
  let config: AgentConfig;
  try {
    config = loadConfig(process.env, process.argv.slice(2));
    readTelemetryEnv(process.env);
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(2);
  }
  const log = createLog(config.LOG_LEVEL, { service: 'node-agent', ...(config.SIMULATE ? { simulated: config.SIMULATE } : { nodeId: config.NODE_ID }) });
  const counters = new CounterRegistry();
  // Spans go by OTLP/HTTP only with OTEL_EXPORTER_OTLP_ENDPOINT; a simulated fleet sampled at 0 records nothing at all.
  const stopTelemetry = await startTelemetry({ serviceName: config.SIMULATE > 0 ? 'changeover-node-agent-sim' : 'changeover-node-agent', resourceAttributes: { 'service.instance.id': config.SIMULATE > 0 ? `sim-${config.SIM_NODE_PREFIX}` : config.NODE_ID } });
  const tracing = unitTracer({ enabled: telemetryEnabled(), ratio: config.AGENT_TRACE_SAMPLE_RATIO, keepFailures: config.SIMULATE === 0 || config.AGENT_TRACE_SAMPLE_RATIO > 0 });
  const stops: (() => Promise<void>)[] = [stopTelemetry];
  // Ready once NATS is connected and the local store is loaded (the agent or fleet started), while NATS stays open.
  let ready = false;
  let connected = () => false;

  if (config.SIMULATE > 0) {
    // Simulated nodes check signatures like real ones when trust roots are set (cached per shared manifest).
    const trust = loadTrustRoots(config.AGENT_TRUST_ROOTS);
    // One shared connection for the whole simulated fleet.
    const nc = await connect({ servers: config.NATS_URL, name: `node-agent-sim-${config.SIM_NODE_PREFIX}`, maxReconnectAttempts: -1, noAsyncTraces: true, ...fleetConnectionOptions(config) });
    const fleet = await startSimFleet(nc, {
      count: config.SIMULATE,
      classId: config.NODE_CLASS,
      prefix: config.SIM_NODE_PREFIX,
      armRatio: config.SIM_ARM_RATIO,
      vetoRate: config.SIM_VETO_RATE,
      slowRate: config.SIM_SLOW_RATE,
      failRate: config.SIM_FAIL_RATE,
      agentVersion: config.AGENT_VERSION,
      clusterVersions: config.AGENT_CLUSTER_VERSIONS,
      heartbeatMs: config.AGENT_HEARTBEAT_MS,
      reportsPerSecond: config.SIM_REPORT_RATE,
      ...(Object.keys(trust.roots).length ? { verifySignature: signatureVerifier(trust, config.AGENT_RETIRED_KEYS) } : {}),
      counters,
      log,
      ...(tracing.enabled ? { tracing } : {}),
    });
    stops.push(async () => {
      await fleet.stop();
      await nc.drain();
    });
    connected = () => !nc.isClosed();
    log.info('simulated fleet up', { nodes: config.SIMULATE, classId: config.NODE_CLASS, rssMb: Math.round(process.memoryUsage().rss / 1048576) });
  } else {
    const agent = await startRealAgent(config, log, counters, tracing);
    stops.push(() => agent.stop());
    connected = () => agent.connected();
    log.info('agent up', { nodeId: config.NODE_ID, classId: config.NODE_CLASS, socket: config.AGENT_SOCKET });
    // The launcher keeps a version started by a self-upgrade only once this file names its pid.
    await writeAtomic(join(config.AGENT_STATE_DIR, LAUNCH_FILES.ready), String(process.pid));
  }
  ready = true;
  if (config.AGENT_HEALTH_PORT) {
    const server = await startHealthServer(config.AGENT_HEALTH_PORT, () => ready && connected(), counters, () => ({ agent_rss_bytes: process.memoryUsage().rss }));
    stops.push(() => new Promise((r) => server.close(() => r())));
  }
  // Print one line when up: scripts and tests wait for it.
  process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid, rssMb: Math.round(process.memoryUsage().rss / 1048576) })}\n`);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal });
    for (const stop of stops.reverse()) await stop().catch((e: unknown) => log.error('stop failed', { error: String(e) }));
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((e: unknown) => {
  process.stderr.write(`node-agent failed to start: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});

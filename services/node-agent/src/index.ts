export { AgentCore, type AgentInfo, type AnyCommand } from './core/agent-core.js';
export type * from './core/ports.js';
export { analyzeProposal, analyzeChange, type PackageView, type RunningProcess, type AffectedProcess } from './affected/affected-processes.js';
export { createSimCores, startSimFleet, simNodeId, type SimFleetOptions } from './simulate/sim-fleet.js';
export { NatsFleet, natsSink } from './transport/nats-fleet.js';
export { loadConfig, type AgentConfig } from './config.js';
export { CounterRegistry } from './metrics.js';
export { createLog } from './log.js';

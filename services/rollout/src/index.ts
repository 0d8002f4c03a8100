export { startRollout, type RunningRollout } from './app.js';
export { loadConfig, RolloutConfigSchema, type RolloutConfig } from './config.js';
export { decide, type RolloutCommand, type Decision } from './rollout/rollout.decider.js';
export { evolve, fold, initialState, type RolloutState, type NodePhase } from './rollout/rollout.state.js';
export { react, resume, onHello, type Action } from './workflow/rollout.workflow.js';
export { summarize } from './rollout/rollout.view.js';
export { checkDependencies } from './dependency-check/dependency-check.js';

export { runCli, type CliIo } from './program.js';
export { RestClient } from './client.js';
export { renderSummary, renderList, renderPlan, progressLine } from './rollout/render.js';

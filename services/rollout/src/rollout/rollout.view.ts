import type { RolloutSummary } from '@changeover/contracts';
import { NODE_PHASE_LIST, type ActiveState, type NodePhase } from './rollout.state.js';

/** The answer to `rollout show`: counts, waves, and for a stuck rollout who blocks it and how to go on. */
export function summarize(state: ActiveState, version: number, opts: { nodes?: boolean } = {}): RolloutSummary {
  const phases = Object.fromEntries(NODE_PHASE_LIST.filter((p) => state.counts[p] > 0).map((p) => [p, state.counts[p]]));
  const out: RolloutSummary = {
    rolloutId: state.rolloutId,
    status: state.status,
    description: state.update.description,
    attempt: state.attempt,
    version,
    createdBy: state.createdBy,
    createdAt: state.createdAt,
    updatedAt: state.updatedAt,
    policy: state.policy,
    nodes: state.nodes.size,
    phases,
    waves: state.waves.map((w, wave) => ({ wave, nodes: w.nodes.length, completed: w.completed, failed: w.failed, startedAt: w.startedAt })),
    vetoes: state.status === 'blocked' ? state.vetoes.slice(0, 1000) : [],
    forced: state.forced,
    discrepancies: state.discrepancies.slice(0, 1000),
    stuck: stuck(state),
  };
  if (state.startAt !== null) out.startAt = state.startAt;
  if (state.waitingForWindow && state.status === 'applying') out.waitingForWindow = { until: state.waitingForWindow.until, classes: [...state.waitingForWindow.classes] };
  if (state.retries.length) out.retries = state.retries.slice(-100).map((r) => ({ ...r }));
  if (opts.nodes) out.nodePhases = Object.fromEntries([...state.nodes].slice(0, 10_000).map(([id, n]) => [id, n.phase]));
  return out;
}

/** The answer to `rollout show`: the summary and, when nodes failed, their failures (the projection row holds the same). */
export function showSummary(state: ActiveState, version: number, opts: { nodes?: boolean } = {}): RolloutSummary {
  const summary = summarize(state, version, opts);
  return state.failures.length ? { ...summary, failures: [...state.failures] } : summary;
}

function stuck(state: ActiveState): RolloutSummary['stuck'] {
  const id = state.rolloutId;
  if (state.status === 'blocked') {
    const nodes = [...new Set(state.vetoes.map((v) => v.nodeId))];
    const processes = [...new Set(state.vetoes.map((v) => `${v.nodeId}/${v.processId}`))];
    const reasons = [...new Set(state.vetoes.map((v) => v.reason))].join(', ');
    const retry = Math.max(0, ...state.vetoes.map((v) => v.retryAfterMs ?? 0));
    return {
      reason: state.vetoes.length ? `vetoed by ${state.vetoingNodes} node(s): ${reasons}${state.vetoCount > state.vetoes.length ? ` (the first ${state.vetoes.length} of ${state.vetoCount} vetoes listed)` : ''}` : 'waiting for a re-vote',
      nodes,
      processes,
      hint: `changeover rollout force ${id} --reason "<why>"   (or: changeover rollout revote ${id}${retry ? ` after ${Math.ceil(retry / 1000)} s` : ''}, changeover rollout cancel ${id})`,
    };
  }
  if (state.status === 'paused') {
    const reason = state.by ? `paused by operator ${state.by}: ${state.reason}` : state.reason;
    const retry = state.counts.failed > 0 ? `changeover rollout retry ${id} --reason "<why>", ` : '';
    return { reason, nodes: state.by ? [] : firstIn(state, 'failed'), processes: [], hint: `changeover rollout resume ${id}   (or: ${retry}changeover rollout regress ${id}, changeover rollout cancel ${id})` };
  }
  if (state.status === 'scheduled') {
    return { reason: `scheduled: starts at ${state.startAt}`, nodes: [], processes: [], hint: `changeover rollout cancel ${id}   (to call it off before it starts)` };
  }
  if (state.status === 'applying' && state.waitingForWindow && state.counts.committing === 0) {
    const w = state.waitingForWindow;
    return { reason: `outside the maintenance window of class ${w.classes.join(', ')}: waits until ${w.until}`, nodes: [], processes: [], hint: `changeover class windows show ${w.classes[0] ?? '<class>'}   (or: changeover rollout cancel ${id})` };
  }
  if (state.status === 'voting') {
    return { reason: `waiting for ${state.counts.voting} vote(s) until ${state.voteDeadline}`, nodes: firstIn(state, 'voting'), processes: [], hint: `changeover rollout watch ${id}` };
  }
  return null;
}

/** The first `max` nodes in a phase, without copying the node map (a summary is written every 100 ms of a 100,000-node vote). */
function firstIn(state: ActiveState, phase: NodePhase, max = 1000): string[] {
  const out: string[] = [];
  if (state.counts[phase] === 0) return out;
  for (const [id, n] of state.nodes) {
    if (n.phase !== phase) continue;
    out.push(id);
    if (out.length === max) break;
  }
  return out;
}

import type { RolloutEvent } from '../rollout/rollout.events.js';
import { deferredOutsideWindow, type RegressTarget, type RolloutCommand } from '../rollout/rollout.decider.js';
import { attemptOf, isTerminal, type ActiveState, type NodePhase, type RolloutState } from '../rollout/rollout.state.js';

/** The deadlines a rollout has: each fires one command, and is re-armed from the state on load. */
export type Timer = { name: 'vote'; attempt: number } | { name: 'wave'; wave: number } | { name: 'start' } | { name: 'window'; until: string } | { name: 'retry'; attempt: number };

/** The timer's key (one timer per key) and the command it fires (its `now` is set when it fires). */
export function timerCommand(t: Timer): { key: string; command: RolloutCommand } {
  const now = new Date(0);
  switch (t.name) {
    case 'vote':
      return { key: `vote:${t.attempt}`, command: { type: 'VoteTimeout', attempt: t.attempt, now } };
    case 'wave':
      return { key: `wave:${t.wave}`, command: { type: 'WaveTimeout', wave: t.wave, now } };
    case 'start':
      return { key: 'start', command: { type: 'Start', now } };
    case 'window':
      return { key: `window:${t.until}`, command: { type: 'WindowOpen', now } };
    case 'retry':
      return { key: `node-retry:${t.attempt}`, command: { type: 'RetryTimeout', attempt: t.attempt, now } };
    default: {
      const never: never = t;
      return never;
    }
  }
}

/** Who a command goes to: one message to a whole class, or one per node (same payload). */
export type Recipients = { kind: 'class'; classId: string } | { kind: 'nodes'; nodeIds: string[] };

export type IgnoreReason =
  | 'duplicate-vote'
  | 'late-vote'
  | 'stale-attempt'
  | 'dry-run-vote'
  | 'duplicate-completion'
  | 'unexpected-progress'
  | 'live-progress'
  | 'regress-not-requested'
  | 'timer-not-due'
  | 'not-verifying'
  | 'nothing-pending'
  | 'outside-window';

/** What the orchestrator does next; one thin runner carries these out. */
export type Action =
  | { kind: 'propose'; selection: number; to: Recipients; attempt: number }
  | { kind: 'commit'; selection: number; to: Recipients; attempt: number; forced: boolean }
  | { kind: 'abort'; to: Recipients; attempt: number; reason: string }
  | { kind: 'regress'; to: Recipients; attempt: number; target: RegressTarget; reason: string }
  | { kind: 'schedule'; timer: Timer; at: string }
  | { kind: 'decide'; command: 'Verify' }
  | { kind: 'ignore'; reason: IgnoreReason }
  | { kind: 'complete' };

/** Groups nodes by selection; a selection wholly addressed to a class becomes one class broadcast. */
export function recipients(state: ActiveState, nodeIds: Iterable<string>): { selection: number; to: Recipients }[] {
  const bySelection = new Map<number, string[]>();
  for (const id of nodeIds) {
    const entry = state.nodes.get(id);
    if (!entry) continue;
    if (!bySelection.has(entry.selection)) bySelection.set(entry.selection, []);
    bySelection.get(entry.selection)!.push(id);
  }
  return [...bySelection].map(([selection, nodes]) => {
    const a = state.assignments[selection]!;
    const whole = a.classId !== undefined && nodes.length === a.nodes.length;
    return { selection, to: whole ? { kind: 'class', classId: a.classId! } : { kind: 'nodes', nodeIds: nodes.sort() } };
  });
}

const nodesIn = (state: ActiveState, ...phases: NodePhase[]) => [...state.nodes].filter(([, n]) => phases.includes(n.phase)).map(([id]) => id);

export const parseRegressTarget = (to: string): RegressTarget => {
  if (to === 'previous') return { kind: 'previous' };
  const at = to.lastIndexOf('@');
  return { kind: 'version', package: to.slice(0, at), version: to.slice(at + 1) };
};

const waveDeadline = (state: ActiveState, wave: number) => new Date(Date.parse(state.waves[wave]!.startedAt) + state.policy.changeoverTimeoutMs).toISOString();
const retryDeadline = (state: ActiveState, at: string) => new Date(Date.parse(at) + state.policy.changeoverTimeoutMs).toISOString();

/** Committing nodes by their commit attempt (retried nodes carry their retry's). */
function committingByAttempt(state: ActiveState): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const [id, n] of state.nodes) {
    if (n.phase !== 'committing') continue;
    const a = attemptOf(state, n);
    if (!out.has(a)) out.set(a, []);
    out.get(a)!.push(id);
  }
  return out;
}

/** react(state after the event, event) → what to do about it. */
export function react(state: RolloutState, event: RolloutEvent): Action[] {
  if (state.status === 'initial') return [];
  const out: Action[] = [];
  switch (event.type) {
    case 'rollout.proposed':
      if (event.data.dryRun || state.status !== 'voting') break;
      for (const r of recipients(state, nodesIn(state, 'voting'))) out.push({ kind: 'propose', ...r, attempt: state.attempt });
      out.push({ kind: 'schedule', timer: { name: 'vote', attempt: state.attempt }, at: state.voteDeadline });
      break;
    case 'rollout.wave-started': {
      // A wave in parts is committed once, with its last part: a whole class still gets one broadcast.
      if ((event.data.part ?? 0) < (event.data.parts ?? 1) - 1) break;
      const wave = state.waves[event.data.wave];
      for (const r of recipients(state, wave?.nodes ?? event.data.nodes)) out.push({ kind: 'commit', ...r, attempt: state.attempt, forced: state.forced !== null });
      out.push({ kind: 'schedule', timer: { name: 'wave', wave: event.data.wave }, at: waveDeadline(state, event.data.wave) });
      break;
    }
    case 'rollout.created':
      if (state.status === 'scheduled' && state.startAt) out.push({ kind: 'schedule', timer: { name: 'start' }, at: state.startAt });
      break;
    case 'rollout.window-wait':
      if (state.waitingForWindow) out.push({ kind: 'schedule', timer: { name: 'window', until: state.waitingForWindow.until }, at: state.waitingForWindow.until });
      break;
    case 'rollout.nodes-retried': {
      const retried = event.data.nodeIds.filter((n) => state.nodes.get(n)?.phase === 'committing');
      for (const r of recipients(state, retried)) out.push({ kind: 'commit', ...r, attempt: event.data.attempt, forced: state.forced !== null });
      out.push({ kind: 'schedule', timer: { name: 'retry', attempt: event.data.attempt }, at: retryDeadline(state, event.data.at) });
      break;
    }
    case 'rollout.cancelled': {
      // A rollout cancelled while scheduled asked no node anything.
      if (!state.proposed) break;
      const inFlight = nodesIn(state, 'voting', 'accepted', 'committing', 'deferred');
      for (const r of recipients(state, inFlight)) out.push({ kind: 'abort', to: r.to, attempt: state.attempt, reason: `cancelled by ${event.data.by}: ${event.data.reason}` });
      break;
    }
    case 'rollout.regress-requested':
      for (const r of recipients(state, event.data.nodes)) out.push({ kind: 'regress', to: r.to, attempt: state.attempt, target: parseRegressTarget(event.data.to), reason: event.data.reason });
      break;
    case 'rollout.nodes-added':
    case 'rollout.votes-recorded':
    case 'rollout.node-unreachable':
    case 'rollout.blocked':
    case 'rollout.forced':
    case 'rollout.revote-requested':
    case 'rollout.nodes-excluded':
    case 'rollout.accepted':
    case 'rollout.node-progressed':
    case 'rollout.nodes-completed':
    case 'rollout.node-failed':
    case 'rollout.paused':
    case 'rollout.resumed':
    case 'rollout.aborted':
    case 'rollout.node-regressed':
    case 'rollout.dependency-discrepancy':
    case 'rollout.verified':
    case 'rollout.completed':
    case 'rollout.failed':
      break;
    default: {
      const never: never = event;
      return never;
    }
  }
  if (state.status === 'verifying' && event.type !== 'rollout.verified' && event.type !== 'rollout.dependency-discrepancy') out.push({ kind: 'decide', command: 'Verify' });
  if (!needsOwner(state)) out.push({ kind: 'complete' });
  return out;
}

/** Whether anything is still to be done for the rollout (else its lease can go). */
export function needsOwner(state: RolloutState): boolean {
  if (state.status === 'initial') return false;
  if (!isTerminal(state)) return true;
  return state.counts.regressing > 0 || (state.status === 'completed' && state.counts.deferred > 0);
}

/** On load (start-up, lease takeover): re-send what may have been lost and re-arm timers from the state. */
export function resume(state: RolloutState): Action[] {
  if (state.status === 'initial') return [];
  const out: Action[] = [];
  if (state.status === 'scheduled' && state.startAt) out.push({ kind: 'schedule', timer: { name: 'start' }, at: state.startAt });
  if (state.status === 'voting') {
    for (const r of recipients(state, nodesIn(state, 'voting'))) out.push({ kind: 'propose', ...r, attempt: state.attempt });
    out.push({ kind: 'schedule', timer: { name: 'vote', attempt: state.attempt }, at: state.voteDeadline });
  }
  if (!isTerminal(state)) {
    for (const [attempt, nodes] of committingByAttempt(state)) for (const r of recipients(state, nodes)) out.push({ kind: 'commit', ...r, attempt, forced: state.forced !== null });
    state.waves.forEach((w, i) => {
      if (w.nodes.some((n) => { const e = state.nodes.get(n); return e?.phase === 'committing' && e.attempt === undefined; })) out.push({ kind: 'schedule', timer: { name: 'wave', wave: i }, at: waveDeadline(state, i) });
    });
    for (const r of state.retries) {
      if ([...state.nodes.values()].some((n) => n.phase === 'committing' && n.attempt === r.attempt)) out.push({ kind: 'schedule', timer: { name: 'retry', attempt: r.attempt }, at: retryDeadline(state, r.at) });
    }
    if (state.status === 'applying' && state.waitingForWindow) out.push({ kind: 'schedule', timer: { name: 'window', until: state.waitingForWindow.until }, at: state.waitingForWindow.until });
  }
  if (state.regressTo !== null) {
    for (const r of recipients(state, nodesIn(state, 'regressing'))) out.push({ kind: 'regress', to: r.to, attempt: state.attempt, target: parseRegressTarget(state.regressTo), reason: 'resumed' });
  }
  if (state.status === 'verifying') out.push({ kind: 'decide', command: 'Verify' });
  if (!needsOwner(state)) out.push({ kind: 'complete' });
  return out;
}

/**
 * What the nodes are still owed an answer to: the proposal to nodes that have not voted, the commit to
 * nodes not finished, the regress to nodes regressing (resume's sends, without its timers). Sent again
 * when reports to this instance may have been lost (its NATS connection came back); agents answer a
 * repeat from their record.
 */
export function owedSends(state: RolloutState): Action[] {
  return resume(state).filter((a) => a.kind === 'propose' || a.kind === 'commit' || a.kind === 'regress');
}

/** A node said hello: it gets whatever it is still owed (reconcile), since nothing is durable per node. */
export function onHello(state: RolloutState, nodeId: string): Action[] {
  if (state.status === 'initial') return [];
  const entry = state.nodes.get(nodeId);
  if (!entry) return [];
  const to: Recipients = { kind: 'nodes', nodeIds: [nodeId] };
  const { selection } = entry;
  switch (entry.phase) {
    case 'voting':
      return state.status === 'voting' ? [{ kind: 'propose', selection, to, attempt: state.attempt }] : [{ kind: 'ignore', reason: 'nothing-pending' }];
    case 'deferred':
      return isTerminal(state) && state.status !== 'completed' ? [{ kind: 'ignore', reason: 'nothing-pending' }] : [{ kind: 'propose', selection, to, attempt: state.attempt }];
    case 'committing':
      return isTerminal(state) ? [{ kind: 'ignore', reason: 'nothing-pending' }] : [{ kind: 'commit', selection, to, attempt: attemptOf(state, entry), forced: state.forced !== null }];
    case 'regressing':
      return [{ kind: 'regress', to, attempt: state.attempt, target: parseRegressTarget(state.regressTo ?? 'previous'), reason: 'resent on hello' }];
    case 'accepted':
    case 'vetoed':
    case 'unreachable':
    case 'excluded':
    case 'completed':
    case 'failed':
    case 'regressed':
      return [{ kind: 'ignore', reason: 'nothing-pending' }];
    default: {
      const never: never = entry.phase;
      return never;
    }
  }
}

/** Names why a command produced no event, so late and duplicate reports are explicit, not silent. */
export function whyIgnored(command: RolloutCommand, state: RolloutState): IgnoreReason {
  if (state.status === 'initial') return 'nothing-pending';
  switch (command.type) {
    case 'RecordVote': {
      const r = command.report;
      if (r.dryRun) return 'dry-run-vote';
      if (r.attempt !== state.attempt) return 'stale-attempt';
      if (r.decision === 'accept' && deferredOutsideWindow(state, r.nodeId, command.now)) return 'outside-window';
      return state.status === 'voting' ? 'duplicate-vote' : 'late-vote';
    }
    case 'RecordProgress': {
      const r = command.report;
      const entry = state.nodes.get(r.nodeId);
      const phase = entry?.phase;
      const attempt = attemptOf(state, entry);
      if (r.phase === 'completed') return phase === 'completed' ? 'duplicate-completion' : r.attempt !== attempt ? 'stale-attempt' : 'unexpected-progress';
      if (r.phase === 'failed' || r.phase === 'regressed') return r.attempt !== attempt ? 'stale-attempt' : phase === 'regressed' ? 'regress-not-requested' : 'unexpected-progress';
      return 'live-progress';
    }
    case 'VoteTimeout':
    case 'WaveTimeout':
    case 'RetryTimeout':
    case 'Start':
    case 'WindowOpen':
      return 'timer-not-due';
    case 'Verify':
      return 'not-verifying';
    default:
      return 'nothing-pending';
  }
}

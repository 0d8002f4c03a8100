import { BLOCKED_VETOES_BUDGET, ChangeoverError, MAX, NODE_LIST_CHUNK, type Assignment, type ProgressReport, type RolloutPolicy, type RolloutWindows, type SoftwareUpdate, type Veto, type VoteReport } from '@changeover/contracts';
import { checkDependencies, type CheckedNode } from '../dependency-check/dependency-check.js';
import { tally, type Tally } from '../voting/vote-tally.js';
import { nextWave, waveSucceeded } from '../waves/wave-plan.js';
import { ev, type RolloutEvent } from './rollout.events.js';
import { attemptOf, isDrained, isTerminal, nextRetryAttempt, vetoesOf, type ActiveState, type NodePhase, type RolloutState } from './rollout.state.js';
import { anyOpen, nextOpening } from '../schedules/maintenance-window.js';

export type RegressTarget = { kind: 'previous' } | { kind: 'version'; package: string; version: string };

/** Everything that can be asked of a rollout. Time is an input. */
export type RolloutCommand =
  | {
      type: 'Create';
      now: Date;
      rolloutId: string;
      update: SoftwareUpdate;
      policy: RolloutPolicy;
      assignments: Assignment[];
      unsupported: { nodeId: string; package: string; processorType: 'x86_64' | 'arm64' | 'any' }[];
      createdBy: string;
      /** Propose at this time, not before (ISO). */
      startAt?: string;
      /** The targeted classes' maintenance windows now. */
      windows?: RolloutWindows;
    }
  /** A scheduled rollout's start time came (a timer). */
  | { type: 'Start'; now: Date }
  /** A maintenance window the rollout waits for should be open now (a timer). */
  | { type: 'WindowOpen'; now: Date }
  /** Commit failed or timed-out nodes again: the named ones, or all of them. */
  | { type: 'Retry'; now: Date; by: string; reason: string; nodeIds?: string[] }
  | { type: 'RetryTimeout'; now: Date; attempt: number }
  | { type: 'RecordVote'; now: Date; report: VoteReport }
  | { type: 'VoteTimeout'; now: Date; attempt: number }
  | { type: 'Force'; now: Date; by: string; reason: string; nodes?: string[] }
  | { type: 'Revote'; now: Date; by: string; reason: string }
  | { type: 'Cancel'; now: Date; by: string; reason: string }
  | { type: 'RecordProgress'; now: Date; report: ProgressReport }
  | { type: 'WaveTimeout'; now: Date; wave: number }
  | { type: 'Resume'; now: Date; by: string; reason?: string }
  | { type: 'Pause'; now: Date; by: string; reason: string }
  /** `elsewhere`: the `api@version` active nodes outside the rollout provide (from the registry). */
  | { type: 'Verify'; now: Date; elsewhere?: string[] }
  | { type: 'Regress'; now: Date; by: string; nodes?: string[]; to: RegressTarget; reason: string };

export type Decision = RolloutEvent[] | ChangeoverError;

/** Date → ISO text. A batch's reports were stamped within a few milliseconds: the last text is reused for the same instant. */
let lastIso = { ms: NaN, text: '' };
const iso = (d: Date) => {
  const ms = d.getTime();
  if (ms !== lastIso.ms) lastIso = { ms, text: d.toISOString() };
  return lastIso.text;
};
const invalidState = (s: RolloutState, what: string) => new ChangeoverError('INVALID_STATE', `cannot ${what}: the rollout is ${s.status}`, { status: s.status });

/** decide(command, state) → the events that happen, or a typed error. Pure; never reads the clock. */
export function decide(command: RolloutCommand, state: RolloutState): Decision {
  if (command.type === 'Create') return create(command, state);
  if (state.status === 'initial') return new ChangeoverError('NOT_FOUND', 'no such rollout');
  switch (command.type) {
    case 'RecordVote':
      return recordVote(command, state);
    case 'VoteTimeout':
      return voteTimeout(command, state);
    case 'Force':
      return force(command, state);
    case 'Revote': {
      if (state.status !== 'blocked') return invalidState(state, 'ask for a re-vote');
      const attempt = state.attempt + 1;
      const at = iso(command.now);
      return [
        ev('rollout.revote-requested', { rolloutId: state.rolloutId, by: command.by, reason: command.reason, attempt, at }),
        ev('rollout.proposed', { rolloutId: state.rolloutId, attempt, nodes: state.nodes.size, dryRun: false, at }),
      ];
    }
    case 'Cancel':
      if (isTerminal(state)) return invalidState(state, 'cancel');
      return [ev('rollout.cancelled', { rolloutId: state.rolloutId, by: command.by, reason: command.reason, at: iso(command.now) })];
    case 'RecordProgress':
      return recordProgress(command, state);
    case 'WaveTimeout':
      return waveTimeout(command, state);
    case 'Resume': {
      if (state.status !== 'paused') return invalidState(state, 'resume');
      const resumed = ev('rollout.resumed', { rolloutId: state.rolloutId, by: command.by, ...(command.reason ? { reason: command.reason } : {}), at: iso(command.now) });
      return state.counts.committing === 0 ? [resumed, ...startNextWave(state, new Map(), command.now)] : [resumed];
    }
    case 'Pause': {
      // Only waves start and commands go out while applying; nodes mid-changeover finish and are recorded.
      if (state.status !== 'applying') return invalidState(state, 'pause');
      const committed = state.counts.committing + state.counts.completed + state.counts.failed;
      return [ev('rollout.paused', { rolloutId: state.rolloutId, reason: command.reason, failed: state.counts.failed, committed, by: command.by, at: iso(command.now) })];
    }
    case 'Start':
      if (state.status !== 'scheduled' || state.startAt === null || command.now.getTime() < Date.parse(state.startAt)) return [];
      return [ev('rollout.proposed', { rolloutId: state.rolloutId, attempt: state.attempt, nodes: state.nodes.size, dryRun: false, at: iso(command.now) })];
    case 'WindowOpen':
      if (state.status !== 'applying' || state.waitingForWindow === null || command.now.getTime() < Date.parse(state.waitingForWindow.until)) return [];
      return startNextWave(state, new Map(), command.now);
    case 'Retry':
      return retry(command, state);
    case 'RetryTimeout':
      return retryTimeout(command, state);
    case 'Verify':
      return verify(command, state);
    case 'Regress':
      return regress(command, state);
    default: {
      const never: never = command;
      return never;
    }
  }
}

function create(c: Extract<RolloutCommand, { type: 'Create' }>, state: RolloutState): Decision {
  if (state.status !== 'initial') {
    // A client retrying a create with its own id gets the same rollout, not a second one.
    return state.createdBy === c.createdBy && JSON.stringify(state.update) === JSON.stringify(c.update) ? [] : new ChangeoverError('CONFLICT', `rollout ${c.rolloutId} already exists`);
  }
  const nodes = c.assignments.reduce((n, a) => n + a.nodes.length, 0);
  if (nodes === 0) return new ChangeoverError('VALIDATION_FAILED', 'the update targets no node');
  const at = iso(c.now);
  if (c.startAt !== undefined && Number.isNaN(Date.parse(c.startAt))) return new ChangeoverError('VALIDATION_FAILED', 'startAt: not a time');
  // Only the windows of classes the rollout reaches: those bind its waves.
  const classes = new Set(c.assignments.flatMap((a) => (a.classId ? [a.classId] : [])));
  const windows = (c.windows ?? []).filter((w) => classes.has(w.classId) && w.windows.length > 0);
  const extra = { ...(c.startAt !== undefined ? { startAt: c.startAt } : {}), ...(windows.length ? { windows } : {}) };
  const created = (assignments: Assignment[]) => ev('rollout.created', { rolloutId: c.rolloutId, update: c.update, policy: c.policy, assignments, unsupported: c.unsupported, createdBy: c.createdBy, ...extra, at });
  // A start time still to come: scheduled, proposed by the start timer.
  const proposed = c.startAt !== undefined && Date.parse(c.startAt) > c.now.getTime() ? [] : [ev('rollout.proposed', { rolloutId: c.rolloutId, attempt: 0, nodes, dryRun: false, at })];
  if (nodes <= NODE_LIST_CHUNK) return [created(c.assignments), ...proposed];
  // A large fleet: the assignments without their nodes, then the nodes in parts.
  const added = c.assignments.flatMap((a, selection) => chunks(a.nodes).map((part) => ev('rollout.nodes-added', { rolloutId: c.rolloutId, selection, nodes: part, at })));
  return [created(c.assignments.map((a) => ({ ...a, nodes: [] }))), ...added, ...proposed];
}

/** A node list in parts of at most NODE_LIST_CHUNK ids, each part one event (none for an empty list). */
const chunks = <T>(list: readonly T[]): T[][] => Array.from({ length: Math.ceil(list.length / NODE_LIST_CHUNK) }, (_, i) => list.slice(i * NODE_LIST_CHUNK, (i + 1) * NODE_LIST_CHUNK));

/** A wave starts: its nodes in parts of NODE_LIST_CHUNK (one event for a small wave). */
function waveStarted(state: ActiveState, nodes: string[], at: string): RolloutEvent[] {
  const parts = chunks(nodes);
  return parts.map((part, i) => ev('rollout.wave-started', { rolloutId: state.rolloutId, wave: state.waves.length, nodes: part, part: i, parts: parts.length, at }));
}

/** Checks a report is about this rollout and one of its nodes. */
function checkReport(state: ActiveState, report: { rolloutId: string; nodeId: string }): ChangeoverError | null {
  if (report.rolloutId !== state.rolloutId) return new ChangeoverError('VALIDATION_FAILED', `report is for rollout ${report.rolloutId}, not ${state.rolloutId}`);
  if (!state.nodes.has(report.nodeId)) return new ChangeoverError('NOT_IN_ROLLOUT', `node ${report.nodeId} is not in rollout ${state.rolloutId}`, { nodeId: report.nodeId });
  return null;
}

function recordVote(c: Extract<RolloutCommand, { type: 'RecordVote' }>, state: ActiveState): Decision {
  const bad = checkReport(state, c.report);
  if (bad) return bad;
  const r = c.report;
  if (r.dryRun || r.attempt !== state.attempt) return [];
  const phase = state.nodes.get(r.nodeId)!.phase;
  const at = iso(c.now);
  // One vote; the runner merges the votes of a batch into one event.
  // The objections are recorded (a veto's, and those a forced accept overrode); "accept" verdicts add
  // nothing a node's accept does not say, and were most of a 10,000-node vote's event bytes.
  const verdicts = r.verdicts.some((v) => v.decision === 'veto') ? r.verdicts.filter((v) => v.decision === 'veto') : [];
  const recorded = ev('rollout.votes-recorded', { rolloutId: state.rolloutId, attempt: r.attempt, votes: [{ nodeId: r.nodeId, decision: r.decision, verdicts }], at });
  if (state.status === 'voting') {
    if (phase !== 'voting') return []; // duplicate
    const overlay = new Map<string, NodePhase>([[r.nodeId, r.decision === 'accept' ? 'accepted' : 'vetoed']]);
    if (state.counts.voting > 1) return [recorded];
    const vetoes = r.decision === 'veto' ? [...state.vetoes, ...vetoesOf(r.nodeId, r.verdicts)] : state.vetoes;
    return [recorded, ...conclude(state, overlay, vetoes, c.now)];
  }
  // A deferred node answering after the rollout went ahead: it gets a wave of its own.
  if (phase === 'deferred' && (state.status === 'applying' || state.status === 'verifying' || state.status === 'completed')) {
    if (r.decision === 'veto') return [recorded];
    // Outside its class's window: not now; its next hello inside the window proposes again.
    if (deferredOutsideWindow(state, r.nodeId, c.now)) return [];
    return [recorded, ...waveStarted(state, [r.nodeId], at)];
  }
  return []; // late vote
}

function voteTimeout(c: Extract<RolloutCommand, { type: 'VoteTimeout' }>, state: ActiveState): Decision {
  if (state.status !== 'voting' || c.attempt !== state.attempt || c.now.getTime() < Date.parse(state.voteDeadline)) return [];
  const silent = [...state.nodes].filter(([, n]) => n.phase === 'voting').map(([id]) => id);
  const at = iso(c.now);
  const treatedAs = state.policy.unreachable;
  const phase: NodePhase = treatedAs === 'veto' ? 'unreachable' : treatedAs === 'defer' ? 'deferred' : 'excluded';
  const overlay = new Map<string, NodePhase>(silent.map((n) => [n, phase]));
  const vetoes = treatedAs === 'veto' ? [...state.vetoes, ...silent.map((nodeId) => ({ nodeId, processId: 'agent', reason: 'NO_ANSWER', message: 'no vote before the deadline' }))] : state.vetoes;
  const unreachable = chunks(silent).map((nodeIds) => ev('rollout.node-unreachable', { rolloutId: state.rolloutId, attempt: state.attempt, nodeIds, treatedAs, at }));
  return [...unreachable, ...conclude(state, overlay, vetoes, c.now)];
}

/**
 * The blocked event: the first vetoes in node order, as many as fit MAX.list entries and
 * BLOCKED_VETOES_BUDGET characters, and the counts of all of them. A veto of every node of a large
 * class is still one event of bounded size; who decides (the tally) reads node phases, not this list.
 */
function blocked(state: ActiveState, t: Extract<Tally, { outcome: 'blocked' }>, at: string): RolloutEvent {
  const listed: Veto[] = [];
  let size = 0;
  for (const v of t.vetoes) {
    size += JSON.stringify(v).length + 1;
    if (listed.length === MAX.list || size > BLOCKED_VETOES_BUDGET) break;
    listed.push(v);
  }
  return ev('rollout.blocked', { rolloutId: state.rolloutId, attempt: state.attempt, vetoes: listed, vetoCount: t.vetoes.length, vetoingNodes: t.vetoingNodes, at });
}

/** The vote's end when it goes ahead: the nodes left out (named in parts), then the acceptance with their count. */
function acceptance(state: ActiveState, t: Extract<Tally, { outcome: 'accepted' }>, at: string): RolloutEvent[] {
  const excluded = chunks(t.excluded).map((nodeIds) => ev('rollout.nodes-excluded', { rolloutId: state.rolloutId, attempt: state.attempt, nodeIds, at }));
  return [...excluded, ev('rollout.accepted', { rolloutId: state.rolloutId, attempt: state.attempt, nodes: t.accepted, excluded: t.excluded.length, at })];
}

/** End of a vote: block, or accept and start the first wave. */
function conclude(state: ActiveState, overlay: Map<string, NodePhase>, vetoes: import('@changeover/contracts').Veto[], now: Date): RolloutEvent[] {
  const at = iso(now);
  const t = tally({ policy: state.policy, nodes: state.nodes, overlay, vetoes, unsupported: state.unsupported });
  if (t.outcome === 'blocked') return [blocked(state, t, at)];
  for (const n of t.excluded) overlay.set(n, 'excluded');
  // Nothing to commit: evolve/verify finish it.
  return [...acceptance(state, t, at), ...startNextWave(state, overlay, now)];
}

/** A deferred node whose class is outside its maintenance windows now. */
export function deferredOutsideWindow(state: ActiveState, nodeId: string, now: Date): boolean {
  const entry = state.nodes.get(nodeId);
  return entry?.phase === 'deferred' && closedSelections(state, now).has(entry.selection);
}

/** The selections whose class is outside all of its maintenance windows at the instant. */
function closedSelections(state: ActiveState, now: Date): Set<number> {
  const closed = new Set<number>();
  if (state.windows.length === 0) return closed;
  const byClass = new Map(state.windows.map((w) => [w.classId, w.windows]));
  state.assignments.forEach((a, i) => {
    const windows = a.classId ? byClass.get(a.classId) : undefined;
    if (windows && !anyOpen(windows, now)) closed.add(i);
  });
  return closed;
}

/**
 * The next wave, of the nodes whose class is inside a maintenance window now. When accepted nodes
 * are left and all of them wait for a window: one window-wait naming when the first one opens (its
 * timer asks again then), unless the rollout already waits for that instant.
 */
function startNextWave(state: ActiveState, overlay: Map<string, NodePhase>, now: Date): RolloutEvent[] {
  const closed = closedSelections(state, now);
  const nodes = nextWave({ policy: state.policy, assignments: state.assignments, nodes: state.nodes, overlay, waves: state.waves, skip: closed });
  if (nodes.length) return waveStarted(state, nodes, iso(now));
  if (closed.size === 0) return [];
  const waiting = new Set<number>();
  for (const [id, n] of state.nodes) if ((overlay.get(id) ?? n.phase) === 'accepted' && closed.has(n.selection)) waiting.add(n.selection);
  if (waiting.size === 0) return [];
  const classes = [...new Set([...waiting].map((i) => state.assignments[i]!.classId!))].sort();
  const byClass = new Map(state.windows.map((w) => [w.classId, w.windows]));
  const openings = classes.map((c) => nextOpening(byClass.get(c) ?? [], now)).filter((d): d is Date => d !== null);
  if (openings.length === 0) return [];
  const until = iso(new Date(Math.min(...openings.map((d) => d.getTime()))));
  if (state.waitingForWindow?.until === until) return [];
  return [ev('rollout.window-wait', { rolloutId: state.rolloutId, until, classes, at: iso(now) })];
}

function force(c: Extract<RolloutCommand, { type: 'Force' }>, state: ActiveState): Decision {
  if (state.status !== 'blocked') return invalidState(state, 'force');
  for (const n of c.nodes ?? []) {
    if (!state.nodes.has(n)) return new ChangeoverError('NOT_IN_ROLLOUT', `node ${n} is not in rollout ${state.rolloutId}`, { nodeId: n });
  }
  const at = iso(c.now);
  const chosen = c.nodes ? new Set(c.nodes) : null;
  const overlay = new Map<string, NodePhase>();
  const forcedUnsupported = new Set<string>();
  for (const [id, n] of state.nodes) {
    if (chosen && !chosen.has(id)) continue;
    if (n.phase === 'vetoed' || n.phase === 'unreachable') overlay.set(id, 'accepted');
    if (state.unsupported.has(id)) forcedUnsupported.add(id);
  }
  // Forced nodes accept (claim 19): the tally sees them as accepted and not unsupported.
  const unsupported = new Map([...state.unsupported].filter(([id]) => !forcedUnsupported.has(id)));
  const vetoes = state.vetoes.filter((v) => !(chosen ? chosen.has(v.nodeId) : true));
  const forced = ev('rollout.forced', { rolloutId: state.rolloutId, by: c.by, reason: c.reason, ...(c.nodes ? { nodes: c.nodes } : {}), at });
  const t = tally({ policy: state.policy, nodes: state.nodes, overlay, vetoes, unsupported });
  if (t.outcome === 'blocked') return [forced, blocked(state, t, at)];
  for (const n of t.excluded) overlay.set(n, 'excluded');
  return [forced, ...acceptance(state, t, at), ...startNextWave(state, overlay, c.now)];
}

function recordProgress(c: Extract<RolloutCommand, { type: 'RecordProgress' }>, state: ActiveState): Decision {
  const bad = checkReport(state, c.report);
  if (bad) return bad;
  const r = c.report;
  const entry = state.nodes.get(r.nodeId)!;
  const at = iso(c.now);
  const base = { rolloutId: state.rolloutId, nodeId: r.nodeId, at };
  switch (r.phase) {
    case 'completed': {
      if (entry.phase !== 'committing' || r.attempt !== attemptOf(state, entry)) return []; // duplicate or late
      if (!r.inventory) return new ChangeoverError('VALIDATION_FAILED', 'a completed report must carry the inventory');
      const completed = ev('rollout.nodes-completed', { rolloutId: state.rolloutId, nodes: [{ nodeId: r.nodeId, inventory: 0, bytesFetched: r.bytesFetched ?? 0 }], inventories: [r.inventory], at });
      return [completed, ...afterOutcome(state, r.nodeId, 'completed', c.now)];
    }
    case 'failed':
    case 'regressed': {
      if (entry.phase === 'regressing' && r.phase === 'regressed') return [ev('rollout.node-regressed', r.inventory ? { ...base, inventory: r.inventory } : base)];
      // A regression the node could not carry out (its old version untrusted now, say): failed, named.
      if (entry.phase === 'regressing' && r.phase === 'failed' && r.attempt === state.attempt) {
        return [ev('rollout.node-failed', { ...base, code: r.error?.code ?? 'FAILED', message: `the regression failed: ${r.error?.message ?? 'no reason given'}`.slice(0, 4000) })];
      }
      if (entry.phase !== 'committing' || r.attempt !== attemptOf(state, entry)) return [];
      const code = r.error?.code ?? (r.phase === 'regressed' ? 'REGRESSED' : 'FAILED');
      const message = r.error?.message ?? (r.phase === 'regressed' ? 'the node regressed to its previous modules' : 'the changeover failed');
      return [ev('rollout.node-failed', { ...base, code, message }), ...afterOutcome(state, r.nodeId, 'failed', c.now)];
    }
    case 'fetching':
    case 'preparing':
    case 'starting':
    case 'switching':
    case 'aborted':
      return []; // live progress is not an event: 10,000 nodes × phases would flood the stream
    default: {
      const never: never = r.phase;
      return never;
    }
  }
}

function waveTimeout(c: Extract<RolloutCommand, { type: 'WaveTimeout' }>, state: ActiveState): Decision {
  const wave = state.waves[c.wave];
  if (!wave || isTerminal(state) || c.now.getTime() < Date.parse(wave.startedAt) + state.policy.changeoverTimeoutMs) return [];
  // A retried node keeps its wave but answers to its retry's deadline.
  const late = wave.nodes.filter((n) => { const e = state.nodes.get(n); return e?.phase === 'committing' && e.attempt === undefined; });
  return timedOut(state, late, c.now);
}

function timedOut(state: ActiveState, late: string[], now: Date): RolloutEvent[] {
  if (late.length === 0) return [];
  const at = iso(now);
  const failed = late.map((nodeId) => ev('rollout.node-failed', { rolloutId: state.rolloutId, nodeId, code: 'TIMEOUT', message: `no completion within ${state.policy.changeoverTimeoutMs} ms`, at }));
  return [...failed, ...afterOutcome(state, late, 'failed', now)];
}

/** Retried nodes still committing when their retry's changeover timeout passed fail with TIMEOUT, as a wave's would. */
function retryTimeout(c: Extract<RolloutCommand, { type: 'RetryTimeout' }>, state: ActiveState): Decision {
  const r = state.retries.find((x) => x.attempt === c.attempt);
  if (!r || isTerminal(state) || c.now.getTime() < Date.parse(r.at) + state.policy.changeoverTimeoutMs) return [];
  const late = [...state.nodes].filter(([, n]) => n.phase === 'committing' && n.attempt === c.attempt).map(([id]) => id);
  return timedOut(state, late, c.now);
}

/** The phases a retry may take a node from: a failed changeover, a timed-out one (failed with TIMEOUT). */
const RETRYABLE: readonly NodePhase[] = ['failed'];
const RETRY_STATUSES: readonly string[] = ['applying', 'paused', 'verifying'];

/**
 * An operator commits failed or timed-out nodes again: they go back to committing with a new
 * attempt (the agents answer a repeat of the old one from their record, a new one they carry out).
 * The rollout's status stays (a paused rollout stays paused until resumed); a verifying one applies again.
 */
function retry(c: Extract<RolloutCommand, { type: 'Retry' }>, state: ActiveState): Decision {
  if (!RETRY_STATUSES.includes(state.status)) return invalidState(state, 'retry nodes');
  let nodes: string[];
  if (c.nodeIds) {
    for (const id of c.nodeIds) {
      const entry = state.nodes.get(id);
      if (!entry) return new ChangeoverError('NOT_FOUND', `node ${id} is not in rollout ${state.rolloutId}`, { nodeId: id });
      if (!RETRYABLE.includes(entry.phase)) return new ChangeoverError('INVALID_STATE', `node ${id} is ${entry.phase}: only a failed or timed-out node can be retried`, { nodeId: id, phase: entry.phase });
    }
    nodes = [...new Set(c.nodeIds)].sort();
  } else {
    nodes = [...state.nodes].filter(([, n]) => RETRYABLE.includes(n.phase)).map(([id]) => id).sort();
    if (nodes.length === 0) return new ChangeoverError('INVALID_STATE', `no node of rollout ${state.rolloutId} failed or timed out: nothing to retry`, { failed: 0 });
  }
  const attempt = nextRetryAttempt(state);
  const at = iso(c.now);
  return chunks(nodes).map((nodeIds) => ev('rollout.nodes-retried', { rolloutId: state.rolloutId, by: c.by, reason: c.reason, attempt, nodeIds, at }));
}

/**
 * After nodes completed or failed: cross the error threshold (pause or abort and regress), or
 * start the next wave once the current one met its success threshold.
 */
function afterOutcome(state: ActiveState, nodeIds: string | string[], outcome: 'completed' | 'failed', now: Date): RolloutEvent[] {
  if (state.status !== 'applying') return [];
  const at = iso(now);
  const ids = typeof nodeIds === 'string' ? [nodeIds] : nodeIds;
  const overlay = new Map<string, NodePhase>(ids.map((n) => [n, outcome]));
  const failed = state.counts.failed + (outcome === 'failed' ? ids.length : 0);
  const committed = state.counts.committing + state.counts.completed + state.counts.failed;
  const committing = state.counts.committing - ids.length;
  const { policy } = state;
  if (failed > 0 && failed / committed > policy.errorThreshold) {
    const reason = `${failed} of ${committed} committed nodes failed (error threshold ${policy.errorThreshold})`;
    if (policy.onErrorThreshold === 'pause') return [ev('rollout.paused', { rolloutId: state.rolloutId, reason, failed, committed, at })];
    const changed = [...state.nodes].filter(([id, n]) => (overlay.get(id) ?? n.phase) === 'completed' || (overlay.get(id) ?? n.phase) === 'committing').map(([id]) => id);
    return [
      ev('rollout.aborted', { rolloutId: state.rolloutId, reason, at }),
      ...chunks(changed).map((nodes) => ev('rollout.regress-requested', { rolloutId: state.rolloutId, by: 'system', nodes, to: 'previous', reason, at })),
    ];
  }
  if (state.counts.accepted === 0) return []; // evolve turns a drained rollout into verifying
  const current = state.waves[state.waves.length - 1];
  if (!current) return [];
  const completedNow = current.completed + ids.filter((n) => outcome === 'completed' && state.nodes.get(n)?.wave === state.waves.length - 1).length;
  const failedNow = current.failed + ids.filter((n) => outcome === 'failed' && state.nodes.get(n)?.wave === state.waves.length - 1).length;
  if (waveSucceeded(policy, { nodes: current.nodes, completed: completedNow })) {
    return startNextWave(state, overlay, now);
  } else if (completedNow + failedNow === current.nodes.length && committing === 0) {
    const reason = `wave ${state.waves.length - 1} finished with ${completedNow} of ${current.nodes.length} nodes completed, below the success threshold ${policy.waves.successThreshold}`;
    return [ev('rollout.paused', { rolloutId: state.rolloutId, reason, failed, committed, at })];
  }
  return [];
}

/** The rollout's completed nodes with their reported inventories and what each was sent. */
export function checkedNodes(state: ActiveState): CheckedNode[] {
  return [...state.inventories].map(([nodeId, inventory]) => ({ nodeId, inventory, selected: state.assignments[state.nodes.get(nodeId)!.selection]!.packages }));
}

/**
 * What the registry is asked to leave out when it counts the fleet's API providers: exactly the nodes
 * whose reported inventories the check reads itself (each node counted once, by its newest word; the
 * registry's copy may still be the one from before the changeover). Every other active node counts
 * with the inventory the registry holds at check time: nodes outside the rollout, nodes of a target
 * class that joined it after the rollout was created, and the rollout's nodes that report no
 * inventory (failed, excluded, regressed). Whole classes are never left out, or a late joiner would be.
 */
export function scopeOf(state: ActiveState): { excludeClasses: string[]; excludeNodes: string[] } {
  return { excludeClasses: [], excludeNodes: [...state.inventories.keys()].sort() };
}

function verify(c: Extract<RolloutCommand, { type: 'Verify' }>, state: ActiveState): Decision {
  if (state.status !== 'verifying' && !(state.status === 'applying' && isDrained(state))) return [];
  const at = iso(c.now);
  const checked = checkedNodes(state);
  const discrepancies = checkDependencies(checked, c.elsewhere ?? []);
  return [
    ...discrepancies.map((discrepancy) => ev('rollout.dependency-discrepancy', { rolloutId: state.rolloutId, discrepancy, at })),
    ev('rollout.verified', { rolloutId: state.rolloutId, nodes: checked.length, discrepancies: discrepancies.length, at }),
    ev('rollout.completed', { rolloutId: state.rolloutId, nodes: state.counts.completed, failed: state.counts.failed, at }),
  ];
}

function regress(c: Extract<RolloutCommand, { type: 'Regress' }>, state: ActiveState): Decision {
  if (state.status === 'created' || state.status === 'voting' || state.status === 'blocked') return invalidState(state, 'regress before any node changed over');
  const changed = (p: NodePhase) => p === 'completed' || p === 'failed' || p === 'regressed';
  let nodes: string[];
  if (c.nodes?.length) {
    for (const n of c.nodes) {
      const entry = state.nodes.get(n);
      if (!entry) return new ChangeoverError('NOT_IN_ROLLOUT', `node ${n} is not in rollout ${state.rolloutId}`, { nodeId: n });
      if (!changed(entry.phase)) return new ChangeoverError('INVALID_STATE', `node ${n} is ${entry.phase}: only a node that changed over can regress`, { nodeId: n, phase: entry.phase });
    }
    nodes = [...new Set(c.nodes)];
  } else {
    nodes = [...state.nodes].filter(([, n]) => changed(n.phase) && n.phase !== 'regressed').map(([id]) => id);
    if (c.to.kind === 'version') nodes.push(...[...state.nodes].filter(([, n]) => n.phase === 'regressed').map(([id]) => id));
  }
  if (nodes.length === 0) return new ChangeoverError('INVALID_STATE', 'no node of this rollout has changed over: nothing to regress');
  const to = c.to.kind === 'previous' ? 'previous' : `${c.to.package}@${c.to.version}`;
  const at = iso(c.now);
  return chunks(nodes.sort()).map((part) => ev('rollout.regress-requested', { rolloutId: state.rolloutId, by: c.by, nodes: part, to, reason: c.reason, at }));
}

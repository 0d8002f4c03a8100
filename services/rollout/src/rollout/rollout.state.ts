import type { Assignment, Discrepancy, Inventory, RolloutPolicy, RolloutWindows, SoftwareUpdate, Veto } from '@changeover/contracts';
import type { RolloutEvent } from './rollout.events.js';

/** Where one node stands in the rollout. Kept tiny: 10,000+ nodes live in one map. */
export type NodePhase =
  | 'voting'
  | 'accepted' // voted yes (or forced), waiting for its wave
  | 'vetoed'
  | 'unreachable' // no vote by the deadline, counted as a veto
  | 'deferred' // no vote by the deadline, gets the update when it says hello
  | 'excluded'
  | 'committing'
  | 'completed'
  | 'failed'
  | 'regressing'
  | 'regressed';

export const NODE_PHASE_LIST: readonly NodePhase[] = ['voting', 'accepted', 'vetoed', 'unreachable', 'deferred', 'excluded', 'committing', 'completed', 'failed', 'regressing', 'regressed'];

export interface NodeEntry {
  phase: NodePhase;
  /** Index into `assignments`: which selection this node gets. */
  selection: number;
  wave?: number;
  forced?: boolean;
  /** The commit attempt of a retried node (its retry's); absent: the rollout's attempt. */
  attempt?: number;
}

/** One operator retry: its attempt number, who, why, how many nodes. */
export interface Retry {
  attempt: number;
  by: string;
  reason: string;
  nodes: number;
  at: string;
}

export interface Wave {
  nodes: string[];
  startedAt: string;
  completed: number;
  failed: number;
}

export interface RolloutCore {
  rolloutId: string;
  update: SoftwareUpdate;
  policy: RolloutPolicy;
  assignments: Assignment[];
  /** node → packages with no module for it (PROCESSOR_UNSUPPORTED vetoes at the tally). */
  unsupported: Map<string, string[]>;
  createdBy: string;
  createdAt: string;
  attempt: number;
  nodes: Map<string, NodeEntry>;
  counts: Record<NodePhase, number>;
  /** Vetoes of the current attempt (from votes), or of the last block. */
  vetoes: Veto[];
  forced: { by: string; reason: string; at: string } | null;
  waves: Wave[];
  inventories: Map<string, Inventory>;
  discrepancies: Discrepancy[];
  /** The latest node failures (at most MAX_RECENT_FAILURES), for `rollout show`. */
  failures: { nodeId: string; code: string; message: string }[];
  regressTo: string | null;
  updatedAt: string;
  /** When a scheduled rollout is proposed (null: at creation). */
  startAt: string | null;
  /** Whether nodes were asked to vote (a rollout cancelled while scheduled asked none). */
  proposed: boolean;
  /** The targeted classes' maintenance windows, as they were at creation. */
  windows: RolloutWindows;
  /** Accepted nodes wait for a window: until when, for which classes. */
  waitingForWindow: { until: string; classes: string[] } | null;
  retries: Retry[];
}

export type RolloutStatus = RolloutState['status'];

/** The rollout as a tagged union: each status carries what only it needs. */
export type RolloutState =
  | { status: 'initial' }
  | (RolloutCore & { status: 'scheduled' })
  | (RolloutCore & { status: 'created' })
  | (RolloutCore & { status: 'voting'; voteDeadline: string })
  | (RolloutCore & { status: 'blocked'; blockedAt: string; /** All vetoes and vetoing nodes; `vetoes` lists the first of them. */ vetoCount: number; vetoingNodes: number })
  | (RolloutCore & { status: 'applying' })
  | (RolloutCore & { status: 'paused'; reason: string; /** The operator who paused it; null when a threshold did. */ by: string | null })
  | (RolloutCore & { status: 'verifying' })
  | (RolloutCore & { status: 'completed'; completedAt: string })
  | (RolloutCore & { status: 'cancelled'; reason: string; by: string })
  | (RolloutCore & { status: 'aborted'; reason: string })
  | (RolloutCore & { status: 'failed'; reason: string });

export type ActiveState = Exclude<RolloutState, { status: 'initial' }>;

export const initialState = (): RolloutState => ({ status: 'initial' });

export const TERMINAL_STATUSES = ['completed', 'cancelled', 'aborted', 'failed'] as const;
export const isTerminal = (s: RolloutState) => (TERMINAL_STATUSES as readonly string[]).includes(s.status);

export const MAX_RECENT_FAILURES = 1000;

const zeroCounts = (): Record<NodePhase, number> => Object.fromEntries(NODE_PHASE_LIST.map((p) => [p, 0])) as Record<NodePhase, number>;

/** Moves a node to a phase, keeping the counters right. */
function setPhase(core: RolloutCore, nodeId: string, phase: NodePhase, extra?: Partial<NodeEntry>): void {
  const entry = core.nodes.get(nodeId);
  if (!entry) return;
  core.counts[entry.phase]--;
  core.counts[phase]++;
  entry.phase = phase;
  if (extra) Object.assign(entry, extra);
}

/** The commit attempt a node's reports carry: its retry's, else the rollout's. */
export const attemptOf = (state: Pick<RolloutCore, 'attempt'>, entry: NodeEntry | undefined) => entry?.attempt ?? state.attempt;

/** The attempt a new retry gets: above every commit attempt of the rollout. */
export const nextRetryAttempt = (state: Pick<RolloutCore, 'attempt' | 'retries'>) => Math.max(state.attempt, ...state.retries.map((r) => r.attempt)) + 1;

/** Nothing left to commit or wait for in the waves (deferred nodes do not hold the rollout up). */
export const isDrained = (core: RolloutCore) => core.counts.accepted === 0 && core.counts.committing === 0;

/**
 * Folds one event into the state. For speed at fleet scale the node map is updated in place:
 * callers keep only the returned state, never an earlier one.
 */
export function evolve(state: RolloutState, event: RolloutEvent): RolloutState {
  if (event.type === 'rollout.created') {
    if (state.status !== 'initial') return state;
    const d = event.data;
    const nodes = new Map<string, NodeEntry>();
    d.assignments.forEach((a, i) => a.nodes.forEach((n) => nodes.set(n, { phase: 'voting', selection: i })));
    const counts = zeroCounts();
    counts.voting = nodes.size;
    const unsupported = new Map<string, string[]>();
    for (const u of d.unsupported) unsupported.set(u.nodeId, [...(unsupported.get(u.nodeId) ?? []), u.package]);
    return {
      status: d.startAt ? 'scheduled' : 'created',
      rolloutId: d.rolloutId,
      update: d.update,
      policy: d.policy,
      // Copied: `rollout.nodes-added` grows these lists, and the event's own data must stay as written.
      assignments: d.assignments.map((a) => ({ ...a, nodes: [...a.nodes] })),
      unsupported,
      createdBy: d.createdBy,
      createdAt: d.at,
      attempt: 0,
      nodes,
      counts,
      vetoes: [],
      forced: null,
      waves: [],
      inventories: new Map(),
      discrepancies: [],
      failures: [],
      regressTo: null,
      updatedAt: d.at,
      startAt: d.startAt ?? null,
      proposed: false,
      windows: d.windows ?? [],
      waitingForWindow: null,
      retries: [],
    };
  }
  if (state.status === 'initial') return state;
  // A copy of every member of the state (the status's own ones too), of which the cases change some.
  const core: RolloutCore = { ...state, updatedAt: event.data.at };
  const keep = (): RolloutState => core as RolloutState;

  switch (event.type) {
    case 'rollout.nodes-added': {
      const d = event.data;
      const a = core.assignments[d.selection];
      if (!a) return keep();
      for (const n of d.nodes) {
        if (core.nodes.has(n)) continue;
        core.nodes.set(n, { phase: 'voting', selection: d.selection });
        core.counts.voting++;
        a.nodes.push(n);
      }
      return keep();
    }
    case 'rollout.proposed': {
      if (event.data.dryRun) return keep();
      return { ...core, status: 'voting', proposed: true, attempt: event.data.attempt, voteDeadline: new Date(Date.parse(event.data.at) + core.policy.voteTimeoutMs).toISOString() };
    }
    case 'rollout.votes-recorded': {
      const vetoes: Veto[] = [];
      for (const v of event.data.votes) {
        setPhase(core, v.nodeId, v.decision === 'accept' ? 'accepted' : 'vetoed');
        if (v.decision === 'veto') vetoes.push(...vetoesOf(v.nodeId, v.verdicts));
      }
      if (vetoes.length) core.vetoes = [...core.vetoes, ...vetoes];
      return keep();
    }
    case 'rollout.node-unreachable': {
      const phase: NodePhase = event.data.treatedAs === 'veto' ? 'unreachable' : event.data.treatedAs === 'defer' ? 'deferred' : 'excluded';
      for (const n of event.data.nodeIds) setPhase(core, n, phase);
      if (phase === 'unreachable') core.vetoes = [...core.vetoes, ...event.data.nodeIds.map((nodeId) => ({ nodeId, processId: 'agent', reason: 'NO_ANSWER', message: 'no vote before the deadline' }))];
      return keep();
    }
    case 'rollout.blocked':
      return { ...core, status: 'blocked', vetoes: event.data.vetoes, vetoCount: event.data.vetoCount, vetoingNodes: event.data.vetoingNodes, blockedAt: event.data.at };
    case 'rollout.forced': {
      const d = event.data;
      core.forced = { by: d.by, reason: d.reason, at: d.at };
      const chosen = d.nodes ? new Set(d.nodes) : null;
      for (const [id, n] of core.nodes) {
        if (chosen && !chosen.has(id)) continue;
        if (n.phase === 'vetoed' || n.phase === 'unreachable') setPhase(core, id, 'accepted', { forced: true });
        else if (n.phase === 'accepted' && core.unsupported.has(id)) n.forced = true;
      }
      core.vetoes = core.vetoes.filter((v) => chosen && !chosen.has(v.nodeId));
      return keep();
    }
    case 'rollout.revote-requested': {
      for (const [id, n] of core.nodes) {
        if (['accepted', 'vetoed', 'unreachable', 'deferred', 'excluded'].includes(n.phase)) setPhase(core, id, 'voting', { forced: false });
      }
      return { ...core, attempt: event.data.attempt, vetoes: [], forced: null, status: 'blocked', vetoCount: 0, vetoingNodes: 0, blockedAt: event.data.at };
    }
    case 'rollout.nodes-excluded':
      for (const n of event.data.nodeIds) setPhase(core, n, 'excluded');
      return keep();
    case 'rollout.accepted': {
      // The nodes left out were named by the rollout.nodes-excluded events before this one.
      // Everyone left out (quorum, exclude policy): nothing to commit, go straight to verifying.
      return isDrained(core) ? { ...core, status: 'verifying' } : { ...core, status: 'applying' };
    }
    case 'rollout.wave-started': {
      const wave = event.data.wave;
      for (const n of event.data.nodes) setPhase(core, n, 'committing', { wave });
      core.waves = [...core.waves];
      // A wave in parts: later parts add their nodes (copies, never the events' own lists).
      const earlier = (event.data.part ?? 0) > 0 ? core.waves[wave] : undefined;
      core.waves[wave] = earlier ? { ...earlier, nodes: [...earlier.nodes, ...event.data.nodes] } : { nodes: [...event.data.nodes], startedAt: event.data.at, completed: 0, failed: 0 };
      core.waitingForWindow = null;
      return keep();
    }
    case 'rollout.window-wait':
      return { ...core, waitingForWindow: { until: event.data.until, classes: [...event.data.classes] } } as RolloutState;
    case 'rollout.nodes-retried': {
      const d = event.data;
      const retried = new Set(d.nodeIds);
      for (const id of d.nodeIds) {
        const entry = core.nodes.get(id);
        if (!entry || entry.phase !== 'failed') continue;
        if (entry.wave !== undefined && core.waves[entry.wave]) {
          core.waves = [...core.waves];
          core.waves[entry.wave] = { ...core.waves[entry.wave]!, failed: Math.max(0, core.waves[entry.wave]!.failed - 1) };
        }
        setPhase(core, id, 'committing', { attempt: d.attempt });
      }
      // A failure retried is no longer the node's latest word.
      core.failures = core.failures.filter((f) => !retried.has(f.nodeId));
      // A bulk retry of a large fleet is several events of one attempt: one entry.
      const last = core.retries.at(-1);
      core.retries = last?.attempt === d.attempt ? [...core.retries.slice(0, -1), { ...last, nodes: last.nodes + d.nodeIds.length }] : [...core.retries, { attempt: d.attempt, by: d.by, reason: d.reason, nodes: d.nodeIds.length, at: d.at }];
      return state.status === 'verifying' ? { ...core, status: 'applying' } : keep();
    }
    case 'rollout.node-progressed':
      return keep();
    case 'rollout.nodes-completed': {
      const { nodes, inventories } = event.data;
      for (const n of nodes) {
        const entry = core.nodes.get(n.nodeId);
        setPhase(core, n.nodeId, 'completed');
        // Nodes with the same inventory share one object: 10,000 identical inventories cost one.
        const inventory = inventories[n.inventory];
        if (inventory) core.inventories.set(n.nodeId, inventory);
        if (entry?.wave !== undefined && core.waves[entry.wave]) core.waves[entry.wave]!.completed++;
      }
      return afterNodeOutcome(state, core);
    }
    case 'rollout.node-failed': {
      const entry = core.nodes.get(event.data.nodeId);
      if (entry?.phase === 'committing' && entry.wave !== undefined && core.waves[entry.wave]) core.waves[entry.wave]!.failed++;
      setPhase(core, event.data.nodeId, 'failed');
      // In place, like the node map: a wave of failures must not copy the list each time.
      core.failures.push({ nodeId: event.data.nodeId, code: event.data.code, message: event.data.message });
      if (core.failures.length > MAX_RECENT_FAILURES) core.failures.splice(0, core.failures.length - MAX_RECENT_FAILURES);
      return afterNodeOutcome(state, core);
    }
    case 'rollout.paused':
      return { ...core, status: 'paused', reason: event.data.reason, by: event.data.by ?? null };
    case 'rollout.resumed':
      return isDrained(core) ? { ...core, status: 'verifying' } : { ...core, status: 'applying' };
    case 'rollout.aborted':
      return { ...core, status: 'aborted', reason: event.data.reason };
    case 'rollout.cancelled':
      return { ...core, status: 'cancelled', reason: event.data.reason, by: event.data.by };
    case 'rollout.regress-requested': {
      for (const n of event.data.nodes) setPhase(core, n, 'regressing');
      core.regressTo = event.data.to;
      return keep();
    }
    case 'rollout.node-regressed':
      setPhase(core, event.data.nodeId, 'regressed');
      return keep();
    case 'rollout.dependency-discrepancy':
      core.discrepancies = [...core.discrepancies, event.data.discrepancy];
      return keep();
    case 'rollout.verified':
      return keep();
    case 'rollout.completed':
      return { ...core, status: 'completed', completedAt: event.data.at };
    case 'rollout.failed':
      return { ...core, status: 'failed', reason: event.data.reason };
    default: {
      const never: never = event;
      return never;
    }
  }
}

/** After a node finished, an applying rollout with nothing left becomes verifying. */
function afterNodeOutcome(state: RolloutState, core: RolloutCore): RolloutState {
  if (state.status === 'applying' && isDrained(core)) return { ...core, status: 'verifying' };
  return core as RolloutState;
}

/** The veto verdicts of one vote, as the Veto records the blocked event names. */
export function vetoesOf(nodeId: string, verdicts: readonly import('@changeover/contracts').Verdict[]): Veto[] {
  const out: Veto[] = [];
  for (const v of verdicts) {
    if (v.decision !== 'veto') continue;
    out.push({ nodeId, processId: v.processId, ...(v.module ? { module: v.module } : {}), reason: v.reason, message: v.message, ...(v.retryAfterMs !== undefined ? { retryAfterMs: v.retryAfterMs } : {}) });
  }
  if (out.length === 0) out.push({ nodeId, processId: 'agent', reason: 'CUSTOM', message: 'the node vetoed without a process verdict' });
  return out;
}

/** Folds a list of events from the initial state. */
export const fold = (events: readonly RolloutEvent[], from: RolloutState = initialState()) => events.reduce(evolve, from);

import { z } from 'zod';
import { MAX, Name, SemVer, SoftwareUpdate, Text } from './domain.js';
import { NodeId, RolloutId } from './ids.js';
import { StartAt } from './rollout-controls.js';

/** How a rollout decides and proceeds (DESIGN §3 "Rollout"). */
export const RolloutPolicy = z.strictObject({
  /** atomic: any veto blocks every node (claim 17); quorum: up to `toleratedVetoes` vetoing nodes are left out. */
  vote: z.discriminatedUnion('mode', [
    z.strictObject({ mode: z.literal('atomic') }),
    z.strictObject({ mode: z.literal('quorum'), toleratedVetoes: z.number().int().nonnegative() }),
  ]).default({ mode: 'atomic' }),
  voteTimeoutMs: z.number().int().positive().max(3_600_000).default(30_000),
  changeoverTimeoutMs: z.number().int().positive().max(3_600_000).default(120_000),
  /** What a node that does not answer the proposal means. */
  unreachable: z.enum(['veto', 'defer', 'exclude']).default('veto'),
  waves: z.strictObject({
    /** Nodes in the first (canary) wave. 0 = no canary. */
    canary: z.number().int().nonnegative().default(1),
    /** Size of each later wave: a count, or a percentage of all nodes ("25%"). */
    size: z.union([z.number().int().positive(), z.string().regex(/^([1-9]\d?|100)%$/)]).default('100%'),
    /** Fraction of a wave that must complete before the next starts. */
    successThreshold: z.number().min(0).max(1).default(1),
  }).default({ canary: 1, size: '100%', successThreshold: 1 }),
  /** Failed nodes (fraction of those committed so far) beyond which the rollout pauses or aborts. */
  errorThreshold: z.number().min(0).max(1).default(0),
  onErrorThreshold: z.enum(['pause', 'abort']).default('pause'),
  /** Nodes per wave that may change over at once; 1 = one node at a time (agent upgrades). */
  maxConcurrent: z.number().int().positive().optional(),
});
export type RolloutPolicy = z.infer<typeof RolloutPolicy>;

export const CreateRolloutRequest = z.strictObject({
  update: SoftwareUpdate,
  policy: RolloutPolicy.default(RolloutPolicy.parse({})),
  /** Client-chosen id for idempotent creation. */
  rolloutId: RolloutId.optional(),
  /** Stay `scheduled` until this time (ISO, with offset), then propose; cancellable meanwhile. */
  startAt: StartAt.optional(),
});
export type CreateRolloutRequest = z.infer<typeof CreateRolloutRequest>;

export const ForceRequest = z.strictObject({ reason: Text.min(1), nodes: z.array(NodeId).max(MAX.nodesPerMessage).optional() });
export const CancelRequest = z.strictObject({ reason: Text.default('') });
export const RevoteRequest = z.strictObject({ reason: Text.default('') });
export const RegressRequest = z.strictObject({
  nodes: z.array(NodeId).max(MAX.nodesPerMessage).optional(),
  to: z.discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('previous') }),
    z.strictObject({ kind: z.literal('version'), package: Name, version: SemVer }),
  ]).default({ kind: 'previous' }),
  reason: Text.default(''),
});

export const AdjustClusterVersionRequest = z.strictObject({
  version: z.number().int().positive(),
  dryRun: z.boolean().default(false),
  /** Why (the audit trail shows it). */
  reason: Text.default(''),
});
export type AdjustClusterVersionRequest = z.infer<typeof AdjustClusterVersionRequest>;

// ── Rollout service answers (REST and CLI) ──

export const ROLLOUT_STATUSES = ['scheduled', 'created', 'voting', 'blocked', 'applying', 'paused', 'verifying', 'completed', 'cancelled', 'aborted', 'failed'] as const;
export const RolloutStatus = z.enum(ROLLOUT_STATUSES);
export type RolloutStatus = z.infer<typeof RolloutStatus>;

export const ResumeRequest = z.strictObject({ reason: Text.default('') });

const VetoView = z.strictObject({
  nodeId: NodeId,
  processId: z.string(),
  module: z.string().optional(),
  reason: z.string(),
  message: z.string(),
  retryAfterMs: z.number().int().nonnegative().optional(),
});

/** What `rollout show` prints: the state, counts by node phase, and why it is stuck. */
export const RolloutSummary = z.strictObject({
  rolloutId: RolloutId,
  status: RolloutStatus,
  description: z.string(),
  attempt: z.number().int().nonnegative(),
  version: z.number().int().nonnegative(),
  createdBy: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
  policy: RolloutPolicy,
  nodes: z.number().int().nonnegative(),
  /** Nodes by phase: voting, accepted, vetoed, committing, completed, failed, regressed… */
  phases: z.record(z.string(), z.number().int().nonnegative()),
  waves: z.array(z.strictObject({ wave: z.number().int().nonnegative(), nodes: z.number().int().nonnegative(), completed: z.number().int().nonnegative(), failed: z.number().int().nonnegative(), startedAt: z.string() })),
  vetoes: z.array(VetoView),
  forced: z.strictObject({ by: z.string(), reason: z.string(), at: z.string() }).nullable(),
  discrepancies: z.array(z.strictObject({ kind: z.string(), nodeId: NodeId, package: z.string(), missing: z.string(), message: z.string() })),
  /** Present when something waits on an operator: what blocks and the command that would unblock it. */
  stuck: z.strictObject({ reason: z.string(), nodes: z.array(NodeId), processes: z.array(z.string()), hint: z.string() }).nullable(),
  /** Per-node phase, when asked for (`?nodes=true`), at most 10,000. */
  nodePhases: z.record(NodeId, z.string()).optional(),
  failures: z.array(z.strictObject({ nodeId: NodeId, code: z.string(), message: z.string() })).optional(),
  /** When a scheduled rollout starts (absent: it started when created). */
  startAt: z.string().optional(),
  /** Set while accepted nodes wait for their class's maintenance window: when the next one opens. */
  waitingForWindow: z.strictObject({ until: z.string(), classes: z.array(z.string()) }).nullable().optional(),
  /** Operator retries of failed or timed-out nodes, oldest first (at most 100 listed). */
  retries: z.array(z.strictObject({ attempt: z.number().int().nonnegative(), by: z.string(), reason: z.string(), nodes: z.number().int().nonnegative(), at: z.string() })).optional(),
  /** The rollout's trace (W3C trace id, 32 hex digits): search it in Jaeger to see the whole rollout. */
  traceId: z.string().regex(/^[0-9a-f]{32}$/).optional(),
});
export type RolloutSummary = z.infer<typeof RolloutSummary>;

/** The longest `GET /rollouts/{id}` holds a request for a change (`waitMs`). */
export const MAX_SHOW_WAIT_MS = 30_000;
const QueryCount = z.string().regex(/^\d{1,15}$/, 'expected a non-negative integer').transform(Number);

/**
 * `GET /rollouts/{id}` query: `nodes=true` adds each node's phase; `after=<version>&waitMs=<ms>`
 * holds the request until the rollout's version passes `after` or `waitMs` elapse (a long poll:
 * `watch` sees each change as it happens instead of polling).
 */
export const ShowRolloutQuery = z
  .strictObject({
    nodes: z.enum(['true', 'false']).default('false').transform((v) => v === 'true'),
    after: QueryCount.optional(),
    waitMs: QueryCount.pipe(z.number().max(MAX_SHOW_WAIT_MS)).optional(),
  })
  .refine((q) => q.waitMs === undefined || q.after !== undefined, { message: 'waitMs needs after (the version last seen)', path: ['waitMs'] });
export type ShowRolloutQuery = z.infer<typeof ShowRolloutQuery>;

/** A dry run: resolve targets and selections, collect would-be votes, commit nothing. */
export const PlanRequest = z.strictObject({ update: SoftwareUpdate, voteTimeoutMs: z.number().int().positive().max(600_000).default(5_000) });
export type PlanRequest = z.infer<typeof PlanRequest>;
export const PlanResult = z.strictObject({
  planId: RolloutId,
  assignments: z.array(z.strictObject({ selectionId: z.string(), classId: z.string().optional(), nodes: z.array(NodeId), packages: z.array(z.strictObject({ name: z.string(), version: z.string(), modules: z.array(z.string()) })) })),
  unsupported: z.array(z.strictObject({ nodeId: NodeId, package: z.string(), processorType: z.string() })),
  votes: z.array(z.strictObject({ nodeId: NodeId, decision: z.enum(['accept', 'veto']), affectedProcesses: z.array(z.string()), vetoes: z.array(VetoView) })),
  noAnswer: z.array(NodeId),
  wouldBlock: z.boolean(),
});
export type PlanResult = z.infer<typeof PlanResult>;

const ClusterBlocker = z.strictObject({
  code: z.enum(['NODE_NOT_ACTIVE', 'GROUP_PARTITIONED', 'NODE_INCAPABLE']),
  nodeId: NodeId.optional(),
  groupId: z.string().max(64).optional(),
  range: z.strictObject({ min: z.number().int().positive(), max: z.number().int().positive() }).optional(),
  members: z.array(z.string()).optional(),
  message: Text,
});

/** GET /cluster-version: nodes, groups, whether an adjustment could start now and what blocks it, progress. */
export const ClusterVersionStatus = z.strictObject({
  activeVersion: z.number().int().positive(),
  /** The version checked for readiness: the one asked for, else the highest every node can run (null: nothing above the active version). */
  candidateVersion: z.number().int().positive().nullable(),
  ready: z.boolean(),
  blockers: z.array(ClusterBlocker),
  nodes: z.array(z.strictObject({ nodeId: NodeId, status: z.string(), agentVersion: z.string().nullable(), clusterVersions: z.strictObject({ min: z.number().int(), max: z.number().int() }).nullable() })),
  groups: z.array(z.strictObject({ groupId: z.string(), activeVersion: z.number().int().positive(), lastSequence: z.number().int().nonnegative(), members: z.array(z.strictObject({ memberId: z.string(), nodeId: NodeId })) })),
  adjustment: z
    .strictObject({
      adjustmentId: z.string(),
      version: z.number().int().positive(),
      state: z.enum(['adjusting', 'adjusted', 'refused']),
      by: z.string(),
      startedAt: z.string(),
      finishedAt: z.string().nullable(),
      acknowledged: z.number().int().nonnegative(),
      total: z.number().int().nonnegative(),
    })
    .nullable(),
});
export type ClusterVersionStatus = z.infer<typeof ClusterVersionStatus>;

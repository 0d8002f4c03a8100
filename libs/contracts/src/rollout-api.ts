import { z } from 'zod';
import { MAX, Name, SemVer, SoftwareUpdate, Text } from './domain.js';
import { NodeId, RolloutId } from './ids.js';

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
});
export type AdjustClusterVersionRequest = z.infer<typeof AdjustClusterVersionRequest>;

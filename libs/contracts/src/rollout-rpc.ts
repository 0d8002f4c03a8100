import { z } from 'zod';
import { MAX } from './domain.js';
import { EVENT_SCHEMAS } from './events.js';
import { RolloutId } from './ids.js';
import { AdjustClusterVersionRequest, CancelRequest, CreateRolloutRequest, ForceRequest, RegressRequest, RevoteRequest } from './rollout-api.js';

// Request/reply on changeover.rollout.<op>: the REST bodies of rollout-api.ts plus the rollout id.

const WithRollout = { rolloutId: RolloutId };
export const RolloutRef = z.strictObject(WithRollout);
export const ForceRolloutRpc = ForceRequest.extend(WithRollout);
export const CancelRolloutRpc = CancelRequest.extend(WithRollout);
export const RevoteRolloutRpc = RevoteRequest.extend(WithRollout);
export const RegressRolloutRpc = RegressRequest.extend(WithRollout);

/** The answer to a rollout command: the rollout it concerns and the stream version it reached. */
export const RolloutAck = z.strictObject({
  rolloutId: RolloutId,
  /** The rollout status after the command (see ROLLOUT_STATUSES). */
  status: z.string().min(1).max(64),
  version: z.number().int().nonnegative(),
});
export type RolloutAck = z.infer<typeof RolloutAck>;

const Blocker = EVENT_SCHEMAS['cluster-version.adjust-refused'].shape.blockers.element;

/** changeover.rollout.adjust-cluster-version — refused (blockers named) or accepted (or only checked, on a dry run). */
export const AdjustClusterVersionReply = z.strictObject({
  version: z.number().int().positive(),
  dryRun: z.boolean(),
  accepted: z.boolean(),
  adjustmentId: z.string().max(MAX.name).nullable(),
  groups: z.number().int().nonnegative(),
  blockers: z.array(Blocker).max(MAX.list),
});
export type AdjustClusterVersionReply = z.infer<typeof AdjustClusterVersionReply>;

/** Request schema of every changeover.rollout.<op>. */
export const ROLLOUT_RPC = {
  create: { request: CreateRolloutRequest, reply: RolloutAck },
  force: { request: ForceRolloutRpc, reply: RolloutAck },
  cancel: { request: CancelRolloutRpc, reply: RolloutAck },
  revote: { request: RevoteRolloutRpc, reply: RolloutAck },
  regress: { request: RegressRolloutRpc, reply: RolloutAck },
  'adjust-cluster-version': { request: AdjustClusterVersionRequest, reply: AdjustClusterVersionReply },
} as const;
export type RolloutOp = keyof typeof ROLLOUT_RPC;

import { z } from 'zod';
import { MAX, Timestamp } from './domain.js';
import { GroupId, NodeId } from './ids.js';

export const MEMBERSHIP_REASONS = ['JOIN', 'LEAVE', 'ADJUST_VERSION'] as const;
export const MembershipReason = z.enum(MEMBERSHIP_REASONS);
export type MembershipReason = z.infer<typeof MembershipReason>;

/** One entry of a group's ordered log (changeover.group.<group>.membership). */
export const MembershipMessage = z.discriminatedUnion('reason', [
  z.strictObject({ reason: z.literal('JOIN'), groupId: GroupId, memberId: z.string().min(1).max(MAX.name), nodeId: NodeId, at: Timestamp }),
  z.strictObject({ reason: z.literal('LEAVE'), groupId: GroupId, memberId: z.string().min(1).max(MAX.name), nodeId: NodeId, at: Timestamp, cause: z.string().max(MAX.text).default('') }),
  z.strictObject({ reason: z.literal('ADJUST_VERSION'), groupId: GroupId, version: z.number().int().positive(), adjustmentId: z.string().min(1).max(MAX.name), at: Timestamp }),
]);
export type MembershipMessage = z.infer<typeof MembershipMessage>;

/**
 * changeover.agent.<node>.group-append — a node that may not write the group logs itself (NATS
 * credentials confine it) asks the rollout service to append its JOIN or LEAVE at the expected last
 * sequence. The message must name the requesting node; ADJUST_VERSION only as a new group's first
 * entry at the cluster's active version.
 */
export const GroupAppendRequest = z.strictObject({ message: MembershipMessage, expectedLastSequence: z.number().int().nonnegative() });
export type GroupAppendRequest = z.infer<typeof GroupAppendRequest>;
export const GroupAppendReply = z.strictObject({ groupId: GroupId, sequence: z.number().int().positive() });
export type GroupAppendReply = z.infer<typeof GroupAppendReply>;

/** A group's log folded: who is in it and the cluster infrastructure version it runs (the last ADJUST_VERSION). */
export interface GroupView {
  groupId: string;
  /** Stream sequence of the last message applied (0: empty log). */
  lastSequence: number;
  /** 1 until the first ADJUST_VERSION. */
  activeVersion: number;
  lastAdjustmentId: string | null;
  /** Ordered by the sequence of their JOIN. */
  members: { memberId: string; nodeId: string; joinedAt: number }[];
}

export const emptyGroupView = (groupId: string): GroupView => ({ groupId, lastSequence: 0, activeVersion: 1, lastAdjustmentId: null, members: [] });

/** Applies one log entry (stream sequence `seq`) to a view; every member and the orchestrator fold the same log the same way. */
export function applyMembership(view: GroupView, seq: number, msg: MembershipMessage | null): GroupView {
  const next = { ...view, lastSequence: Math.max(view.lastSequence, seq) };
  if (!msg) return next;
  switch (msg.reason) {
    case 'JOIN':
      return { ...next, members: [...view.members.filter((m) => m.memberId !== msg.memberId), { memberId: msg.memberId, nodeId: msg.nodeId, joinedAt: seq }] };
    case 'LEAVE':
      return { ...next, members: view.members.filter((m) => !(m.memberId === msg.memberId && m.nodeId === msg.nodeId)) };
    case 'ADJUST_VERSION':
      return { ...next, activeVersion: msg.version, lastAdjustmentId: msg.adjustmentId };
    default: {
      const never: never = msg;
      return never;
    }
  }
}

// ─────────────────────────────────────────────────────────────────────────────
// WIRE CONTRACT. The cluster record lives in a KV-shaped JetStream stream (one message per key):
// agents read it when a member joins, so that once an adjustment is recorded a node that cannot
// run its target is refused. Renaming either breaks deployed agents.
// ─────────────────────────────────────────────────────────────────────────────
export const CLUSTER_RECORD = { stream: 'KV_changeover-cluster', subject: '$KV.changeover-cluster.version' } as const;

/** The cluster's infrastructure version and the target of an adjustment in progress. */
export const ClusterRecord = z.strictObject({
  activeVersion: z.number().int().positive(),
  target: z.strictObject({ version: z.number().int().positive(), adjustmentId: z.string().min(1).max(MAX.name) }).nullable(),
  at: Timestamp,
});
export type ClusterRecord = z.infer<typeof ClusterRecord>;

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

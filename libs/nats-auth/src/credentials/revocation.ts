import { assertId } from '@changeover/contracts';
import { assertUserPublicKey } from '../authority/authority.js';
import { ChangeoverError } from '@changeover/contracts';

/** One revoked user: every JWT of that key issued at or before `revokedAt` (unix seconds) is refused. */
export interface Revocation {
  userPublicKey: string;
  revokedAt: number;
  /** For the operator's eyes; the servers only see the key. */
  nodeId?: string;
}

/** A validated revocation of one node's credentials at `now` (ms, like Date.now()). */
export function nodeRevocation(input: { nodeId: string; userPublicKey: string }, now: number): Revocation {
  const nodeId = assertId('node', input.nodeId);
  const userPublicKey = assertUserPublicKey(input.userPublicKey);
  if (!Number.isFinite(now) || now <= 0) throw new ChangeoverError('VALIDATION_FAILED', 'now must be a positive time in milliseconds');
  return { nodeId, userPublicKey, revokedAt: Math.floor(now / 1000) };
}

/** Adds (or moves forward) one revocation in a list; the list stays one entry per key. */
export function withRevocation(list: readonly Revocation[], revocation: Revocation): Revocation[] {
  const others = list.filter((r) => r.userPublicKey !== revocation.userPublicKey);
  const previous = list.find((r) => r.userPublicKey === revocation.userPublicKey);
  const revokedAt = Math.max(previous?.revokedAt ?? 0, revocation.revokedAt);
  return [...others, { ...revocation, revokedAt }];
}

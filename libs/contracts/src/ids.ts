import { z } from 'zod';
import { ChangeoverError } from './errors.js';

/** Node, class and group ids are interpolated into NATS subjects: only this alphabet is safe. */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

// The max() is redundant with the pattern but tells JSON Schema readers the bound.
export const NodeId = z.string().max(64).regex(ID_PATTERN, 'must match [A-Za-z0-9_-]{1,64}');
export const ClassId = NodeId;
export const GroupId = NodeId;
export const RolloutId = z.string().max(64).regex(ID_PATTERN, 'must match [A-Za-z0-9_-]{1,64}');

export type IdKind = 'node' | 'class' | 'group' | 'rollout';

/** Throws INVALID_ID unless `value` is a subject-safe token. */
export function assertId(kind: IdKind, value: unknown): string {
  if (typeof value === 'string' && ID_PATTERN.test(value)) return value;
  const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 80)) : typeof value;
  throw new ChangeoverError('INVALID_ID', `${kind} id ${shown} is not subject-safe ([A-Za-z0-9_-]{1,64})`, { kind });
}

import { z } from 'zod';
import { MAX, ProcessorType, SemVer, VersionRange } from './domain.js';
import { ClassId, NodeId } from './ids.js';
import { NodeStatus } from './registry-api.js';
import { PageCursor, PageLimit } from './rollout-queries.js';

// The rollout service's read endpoints for the operator console (REST only, not on NATS).

/** `GET /whoami`: the caller as the token says, so a page shows only the actions its role may take. */
export const WhoAmI = z.strictObject({
  name: z.string(),
  role: z.enum(['viewer', 'operator', 'admin']),
  tokenId: z.string(),
});
export type WhoAmI = z.infer<typeof WhoAmI>;

/** The most registry nodes one `GET /fleet` request reads to fill its page (the rest is in `nextCursor`). */
export const MAX_FLEET_SCAN = 20_000;

/**
 * `GET /fleet` query: nodes by node id order; `class` and `status` are asked of the registry,
 * `agentVersion`, `package` (`name` or `name@version`, active on the node) and `search` (a part of
 * the node id) are matched while paging, at most MAX_FLEET_SCAN nodes a request.
 */
export const FleetQuery = z.strictObject({
  class: ClassId.optional(),
  status: NodeStatus.optional(),
  agentVersion: SemVer.optional(),
  package: z.string().max(2 * MAX.name + 1).regex(/^[a-z0-9][a-z0-9._-]{0,127}(@[0-9A-Za-z.+-]{1,128})?$/, 'must be name or name@version').optional(),
  search: z.string().min(1).max(64).regex(/^[A-Za-z0-9_-]+$/, 'must be a part of a node id ([A-Za-z0-9_-])').optional(),
  limit: PageLimit.optional(),
  cursor: PageCursor.optional(),
});
export type FleetQuery = z.infer<typeof FleetQuery>;

export const FleetNode = z.strictObject({
  nodeId: NodeId,
  classId: ClassId,
  processorType: ProcessorType,
  status: NodeStatus,
  lastHeartbeatAt: z.string().nullable(),
  agentVersion: z.string().nullable(),
  clusterVersions: VersionRange.nullable(),
  /** Active packages as `name@version`. */
  packages: z.array(z.string()),
});
export type FleetNode = z.infer<typeof FleetNode>;

export const FleetPage = z.strictObject({
  nodes: z.array(FleetNode),
  /** Registry nodes read for this page (matching or not). */
  scanned: z.number().int().nonnegative(),
  /** Give back as `cursor` for the next page; null after the last node. */
  nextCursor: z.string().nullable(),
});
export type FleetPage = z.infer<typeof FleetPage>;

/** What a package filter names: a package, and perhaps one version of it. */
export function packageFilter(s: string): { name: string; version?: string } {
  const at = s.indexOf('@');
  return at < 0 ? { name: s } : { name: s.slice(0, at), version: s.slice(at + 1) };
}

/** `GET /rollouts/{id}/stream`: the server-sent event kinds (`event:` lines), each `data:` one JSON object. */
export const ROLLOUT_STREAM_EVENTS = ['summary', 'event', 'end'] as const;

/** `event: event` — one stored rollout event, as a line of the rollout's timeline (its data stays in the store). */
export const RolloutStreamEntry = z.strictObject({
  position: z.number().int().positive(),
  type: z.string(),
  at: z.string(),
  actor: z.string().nullable(),
});
export type RolloutStreamEntry = z.infer<typeof RolloutStreamEntry>;

/** `event: end` — why the server closed the stream: the rollout finished, the stream reached its time limit, or the service stops. */
export const RolloutStreamEnd = z.strictObject({
  reason: z.enum(['finished', 'expired', 'shutdown']),
  status: z.string().nullable(),
});
export type RolloutStreamEnd = z.infer<typeof RolloutStreamEnd>;

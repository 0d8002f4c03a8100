import type { NodeStatus } from '@changeover/contracts';

/** A node is active while its last heartbeat is younger than `staleAfterMs` (pure: time is an input). */
export function nodeStatus(lastHeartbeatAt: Date | null, decommissionedAt: Date | null, now: Date, staleAfterMs: number): NodeStatus {
  if (decommissionedAt) return 'decommissioned';
  if (!lastHeartbeatAt) return 'stale';
  return now.getTime() - lastHeartbeatAt.getTime() < staleAfterMs ? 'active' : 'stale';
}

/** Sorted `name@version` ids of an inventory's active packages, as carried by node.inventories-changed. */
export const inventoryPackageIds = (active: readonly { name: string; version: string }[]) => active.map((p) => `${p.name}@${p.version}`).sort();

import type { NatsConnection } from '@nats-io/transport-node';
import { requestRpc } from '@changeover/messaging';
import { ChangeoverError, DEFAULT_PAGE_LIMIT, decodeCursor, encodeCursor, FleetQuery, ListNodesReply, MAX_FLEET_SCAN, packageFilter, parse, subjects, type FleetNode, type FleetPage, type NodeRecord } from '@changeover/contracts';

/** Registry nodes asked for per list-nodes request while filling a fleet page. */
const REGISTRY_PAGE = 1000;

const isFleetCursor = (v: unknown): v is ['fleet', string] => Array.isArray(v) && v.length === 2 && v[0] === 'fleet' && typeof v[1] === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(v[1]);

/** A registry node as the console lists it: no characteristics or inventory bodies, its active packages as name@version. */
export function fleetNode(n: NodeRecord): FleetNode {
  return { nodeId: n.nodeId, classId: n.classId, processorType: n.processorType, status: n.status, lastHeartbeatAt: n.lastHeartbeatAt, agentVersion: n.agentVersion, clusterVersions: n.clusterVersions, packages: (n.inventory?.active ?? []).map((p) => `${p.name}@${p.version}`) };
}

/** The filters the registry does not apply (`agentVersion`, `package`, `search`) as one predicate. */
export function fleetMatcher(q: FleetQuery): (n: NodeRecord) => boolean {
  const pkg = q.package ? packageFilter(q.package) : undefined;
  return (n) =>
    (q.agentVersion === undefined || n.agentVersion === q.agentVersion) &&
    (q.search === undefined || n.nodeId.toLowerCase().includes(q.search.toLowerCase())) &&
    (pkg === undefined || (n.inventory?.active ?? []).some((p) => p.name === pkg.name && (pkg.version === undefined || p.version === pkg.version)));
}

/**
 * `GET /fleet`: the registry's nodes in node id order, filtered, a page at a time. Class and status
 * are the registry's own filters; the others are matched here while paging, reading at most
 * MAX_FLEET_SCAN nodes per request, so a rare match on a 100,000-node fleet answers a short page
 * with a cursor instead of holding the request.
 */
export async function listFleet(nc: NatsConnection, timeoutMs: number, query: Record<string, unknown>): Promise<FleetPage> {
  const q = parse(FleetQuery, query, 'fleet query');
  const limit = q.limit ?? DEFAULT_PAGE_LIMIT;
  let after: string | undefined;
  if (q.cursor !== undefined) {
    const position = decodeCursor(q.cursor, isFleetCursor);
    if (!position) throw new ChangeoverError('VALIDATION_FAILED', 'cursor: not a cursor of this list', { field: 'cursor' });
    after = position[1];
  }
  const matches = fleetMatcher(q);
  const nodes: FleetNode[] = [];
  let scanned = 0;
  for (;;) {
    const page = await requestRpc(nc, subjects.registry('list-nodes'), { limit: Math.min(REGISTRY_PAGE, MAX_FLEET_SCAN - scanned), ...(q.class ? { classId: q.class } : {}), ...(q.status ? { status: q.status } : {}), ...(after ? { after } : {}) }, ListNodesReply, { timeoutMs });
    for (const n of page.nodes) {
      scanned++;
      after = n.nodeId;
      if (!matches(n)) continue;
      nodes.push(fleetNode(n));
      // Full: the next page starts after this node, whatever this registry page still holds.
      if (nodes.length === limit) return { nodes, scanned, nextCursor: page.next || n !== page.nodes.at(-1) ? encodeCursor(['fleet', n.nodeId]) : null };
    }
    if (!page.next) return { nodes, scanned, nextCursor: null };
    after = page.next;
    if (scanned >= MAX_FLEET_SCAN) return { nodes, scanned, nextCursor: encodeCursor(['fleet', after]) };
  }
}

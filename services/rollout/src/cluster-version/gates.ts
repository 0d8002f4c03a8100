import type { NatsConnection } from '@nats-io/transport-node';
import { requestRpc } from '@changeover/messaging';
import { isChangeoverError, ListNodesReply, subjects, ValidatedReport, type GroupView, type NodeRecord } from '@changeover/contracts';
import { metrics, type Logger } from '@changeover/telemetry';
import type { Blocker } from './cluster-version.decider.js';

const unanswered = metrics.counter({ name: 'changeover_cluster_version_validate_unanswered_total', help: 'Nodes that did not answer a validate request (their members count as not reached), by error code', labelNames: ['code'] as const });

export type NodeInfo = Pick<NodeRecord, 'nodeId' | 'status' | 'agentVersion' | 'clusterVersions' | 'lastHeartbeatAt'>;

/** Every node the registry knows, page by page. */
export async function listNodes(nc: NatsConnection, timeoutMs: number): Promise<NodeInfo[]> {
  const out: NodeInfo[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await requestRpc(nc, subjects.registry('list-nodes'), { limit: 10_000, ...(after ? { after } : {}) }, ListNodesReply, { timeoutMs });
    out.push(...page.nodes.map(({ nodeId, status, agentVersion, clusterVersions, lastHeartbeatAt }) => ({ nodeId, status, agentVersion, clusterVersions, lastHeartbeatAt })));
    if (!page.next) return out;
    after = page.next;
  }
}

/**
 * One validate round: each node hosting members reports its members' views; a node that does not
 * answer in time (or answers with an error or a malformed report) maps to null, counted and logged:
 * its members are then "not reached" in blockersFor.
 */
export async function validateRound(nc: NatsConnection, groups: GroupView[], requestId: string, timeoutMs: number, log?: Logger): Promise<Map<string, ValidatedReport | null>> {
  const byNode = new Map<string, Set<string>>();
  for (const g of groups) for (const m of g.members) byNode.set(m.nodeId, (byNode.get(m.nodeId) ?? new Set()).add(g.groupId));
  const answers = await Promise.all(
    [...byNode].map(async ([nodeId, ids]) => {
      const report = await requestRpc(nc, subjects.node(nodeId, 'validate'), { requestId, groups: [...ids] }, ValidatedReport, { timeoutMs }).catch((e: unknown) => {
        const code = isChangeoverError(e) ? e.code : 'INTERNAL';
        unanswered.inc({ code });
        log?.warn({ err: e, nodeId, requestId, groups: ids.size, code }, 'validate not answered');
        return null;
      });
      return [nodeId, report && report.nodeId === nodeId ? report : null] as const;
    }),
  );
  return new Map(answers);
}

const range = (r: { min: number; max: number } | null) => (r ? (r.min === r.max ? `${r.min}` : `${r.min}-${r.max}`) : 'unknown');

/**
 * The checks before an adjustment (claims 8-10), pure: every registered node active, every group's
 * members reached with one view of the log, every node able to run the target. Each blocker names
 * what blocks; a decommissioned node is the only one left out.
 */
export function blockersFor(version: number, nodes: NodeInfo[], groups: GroupView[], reports: Map<string, ValidatedReport | null>, timeoutMs: number): Blocker[] {
  const out: Blocker[] = [];
  for (const n of nodes) {
    if (n.status === 'stale') out.push({ code: 'NODE_NOT_ACTIVE', nodeId: n.nodeId, message: `node ${n.nodeId} is registered but sent no heartbeat recently (last ${n.lastHeartbeatAt ?? 'never'}); bring its agent back or decommission the node` });
  }
  for (const g of groups) {
    const seen = new Map<string, number>();
    for (const m of g.members) {
      const entry = reports.get(m.nodeId)?.groups.find((e) => e.groupId === g.groupId && e.memberId === m.memberId);
      if (entry) seen.set(m.memberId, entry.lastSequence);
    }
    const unreached = g.members.filter((m) => !seen.has(m.memberId));
    const agreed = Math.max(g.lastSequence, ...seen.values());
    const diverged = g.members.filter((m) => seen.has(m.memberId) && seen.get(m.memberId) !== agreed);
    if (unreached.length || diverged.length) {
      const parts = [
        ...(unreached.length ? [`not reached within ${timeoutMs} ms: ${unreached.map((m) => `${m.memberId} (node ${m.nodeId})`).join(', ')}`] : []),
        ...(diverged.length ? [`a different view of the log (sequence ${diverged.map((m) => `${m.memberId}: ${seen.get(m.memberId)}`).join(', ')} instead of ${agreed})`] : []),
      ];
      out.push({ code: 'GROUP_PARTITIONED', groupId: g.groupId, members: [...unreached, ...diverged].map((m) => m.memberId), message: `group ${g.groupId} is partitioned: ${parts.join('; ')}` });
    }
  }
  for (const n of nodes) {
    if (n.status === 'decommissioned') continue;
    const r = n.clusterVersions;
    if (!r || version < r.min || version > r.max) {
      out.push({ code: 'NODE_INCAPABLE', nodeId: n.nodeId, ...(r ? { range: r } : {}), message: `node ${n.nodeId} (agent ${n.agentVersion ?? 'unknown'}) runs cluster versions ${range(r)}, not ${version}; upgrade its agent first` });
    }
  }
  return out;
}

/** The highest version every node that counts can run (null when a node has not said). */
export function highestCommonVersion(nodes: NodeInfo[]): number | null {
  const counted = nodes.filter((n) => n.status !== 'decommissioned');
  if (!counted.length || counted.some((n) => !n.clusterVersions)) return null;
  return Math.min(...counted.map((n) => n.clusterVersions!.max));
}

import { GroupJoinRequest, GroupLeaveRequest, MemberId } from '@changeover/agent-sdk';
import { ChangeoverError, GroupId, parse } from '@changeover/contracts';
import type { GroupManager } from './group-manager.js';

/** Routes under /v1/groups of the agent's local API; answers the JSON body or throws a typed error. */
export type GroupRouter = (method: string, url: URL, body: () => Promise<unknown>) => Promise<unknown>;

export function groupRouter(groups: GroupManager): GroupRouter {
  return async (method, url, body) => {
    const m = /^\/v1\/groups\/([^/]+)(?:\/(join|leave|leader))?$/.exec(url.pathname);
    if (!m) throw new ChangeoverError('NOT_FOUND', `no route ${method} ${url.pathname}`);
    const groupId = parse(GroupId, decodeURIComponent(m[1]!), 'group id');
    const action = m[2];
    if (method === 'POST' && action === 'join') {
      const r = parse(GroupJoinRequest, await body(), 'join request');
      return groups.join(groupId, r.memberId, r.processId);
    }
    if (method === 'POST' && action === 'leave') {
      const r = parse(GroupLeaveRequest, await body(), 'leave request');
      return groups.leave(groupId, r.memberId, r.cause || `left by ${r.processId}`);
    }
    const memberId = parse(MemberId, url.searchParams.get('memberId') ?? '', 'memberId');
    if (method === 'GET' && action === 'leader') return groups.leader(groupId, memberId);
    if (method === 'GET' && action === undefined) {
      const after = url.searchParams.get('after');
      const waitMs = Math.min(Math.max(Number(url.searchParams.get('waitMs') ?? 0) || 0, 0), 60_000);
      return groups.view(groupId, memberId, after === null ? undefined : Math.max(0, Number(after) || 0), waitMs);
    }
    throw new ChangeoverError('NOT_FOUND', `no route ${method} ${url.pathname}`);
  };
}

import { describe, expect, it } from '@jest/globals';
import { ChangeoverError, type GroupView, type ValidatedReport } from '@changeover/contracts';
import { cev, decide, fold, type ClusterCommand, type ClusterEvent } from './cluster-version.decider.js';
import { blockersFor, highestCommonVersion, type NodeInfo } from './gates.js';

// Given these events, when this command, then these events (or this error).
const now = new Date('2026-11-23T12:00:00.000Z');
const at = now.toISOString();
const given = (events: ClusterEvent[]) => ({ when: (c: ClusterCommand) => decide(c, fold(events)) });
const requested = cev('cluster-version.adjust-requested', { adjustmentId: 'a1', version: 2, by: 'ops', groups: ['orders'], at });

describe('cluster version decider', () => {
  it('records the target of an adjustment from the idle state', () => {
    expect(given([]).when({ type: 'Request', adjustmentId: 'a1', version: 2, by: 'ops', groups: ['orders'], now })).toEqual([requested]);
  });

  it('refuses a second adjustment while one is in progress with a typed CONFLICT naming it', () => {
    const r = given([requested]).when({ type: 'Request', adjustmentId: 'a2', version: 2, by: 'other', groups: [], now });
    expect(r).toBeInstanceOf(ChangeoverError);
    expect(r).toMatchObject({ code: 'CONFLICT', details: { adjustmentId: 'a1' } });
  });

  it('refuses the active version and a lower one', () => {
    const adjusted = [requested, cev('cluster-version.adjusted', { adjustmentId: 'a1', version: 2, groups: 1, at })];
    expect(given(adjusted).when({ type: 'Request', adjustmentId: 'a2', version: 2, by: 'ops', groups: [], now })).toMatchObject({ code: 'INVALID_STATE' });
    expect(given(adjusted).when({ type: 'Request', adjustmentId: 'a2', version: 1, by: 'ops', groups: [], now })).toMatchObject({ code: 'INVALID_STATE' });
    expect(fold(adjusted)).toMatchObject({ status: 'idle', activeVersion: 2 });
  });

  it('acknowledges each member once and ignores acks of another adjustment', () => {
    const r = given([requested]).when({ type: 'Acknowledge', adjustmentId: 'a1', members: [{ groupId: 'orders', memberId: 'm1' }, { groupId: 'orders', memberId: 'm1' }, { groupId: 'orders', memberId: 'm2' }], now });
    expect(r).toEqual([
      cev('cluster-version.member-acknowledged', { adjustmentId: 'a1', groupId: 'orders', memberId: 'm1', at }),
      cev('cluster-version.member-acknowledged', { adjustmentId: 'a1', groupId: 'orders', memberId: 'm2', at }),
    ]);
    const acked = [requested, ...(r as ClusterEvent[])];
    expect(given(acked).when({ type: 'Acknowledge', adjustmentId: 'a1', members: [{ groupId: 'orders', memberId: 'm2' }], now })).toEqual([]);
    expect(given(acked).when({ type: 'Acknowledge', adjustmentId: 'zz', members: [{ groupId: 'orders', memberId: 'm3' }], now })).toEqual([]);
  });

  it('an abandoned adjustment (re-check failed) leaves the version where it was and frees the cluster', () => {
    const blockers = [{ code: 'NODE_INCAPABLE' as const, nodeId: 'n4', range: { min: 1, max: 1 }, message: 'n4 runs 1' }];
    const r = given([requested]).when({ type: 'Abandon', adjustmentId: 'a1', blockers, now });
    expect(r).toEqual([cev('cluster-version.adjust-refused', { version: 2, by: 'ops', blockers, at })]);
    expect(fold([requested, ...(r as ClusterEvent[])])).toMatchObject({ status: 'idle', activeVersion: 1, last: { outcome: 'refused', adjustmentId: 'a1' } });
  });

  it('completes once, to the requested version', () => {
    const r = given([requested]).when({ type: 'Complete', adjustmentId: 'a1', groups: 1, now });
    expect(r).toEqual([cev('cluster-version.adjusted', { adjustmentId: 'a1', version: 2, groups: 1, at })]);
    expect(given([requested, ...(r as ClusterEvent[])]).when({ type: 'Complete', adjustmentId: 'a1', groups: 1, now })).toEqual([]);
  });
});

describe('adjustment gates', () => {
  const node = (nodeId: string, status: NodeInfo['status'], min: number, max: number): NodeInfo => ({ nodeId, status, agentVersion: '1.0.0', clusterVersions: { min, max }, lastHeartbeatAt: at });
  const group: GroupView = { groupId: 'orders', lastSequence: 7, activeVersion: 1, lastAdjustmentId: null, members: [{ memberId: 'a', nodeId: 'n1', joinedAt: 1 }, { memberId: 'b', nodeId: 'n2', joinedAt: 2 }, { memberId: 'c', nodeId: 'n3', joinedAt: 3 }] };
  const report = (nodeId: string, memberId: string, lastSequence = 7): ValidatedReport => ({ nodeId, requestId: 'r', groups: [{ groupId: 'orders', memberId, lastSequence, activeVersion: 1, members: ['a', 'b', 'c'] }] });

  it('passes when every node is active and capable and every member answers with one view', () => {
    const reports = new Map([['n1', report('n1', 'a')], ['n2', report('n2', 'b')], ['n3', report('n3', 'c')]]);
    expect(blockersFor(2, [node('n1', 'active', 1, 2), node('n2', 'active', 1, 2), node('n3', 'active', 1, 3)], [group], reports, 1000)).toEqual([]);
  });

  it('names the stale node, the unreached and diverged members of the partitioned group, and the incapable node with its range', () => {
    const reports = new Map<string, ValidatedReport | null>([['n1', report('n1', 'a')], ['n2', report('n2', 'b', 6)], ['n3', null]]);
    const b = blockersFor(2, [node('n1', 'active', 1, 2), node('n2', 'active', 1, 1), node('n3', 'stale', 1, 2), node('n9', 'decommissioned', 1, 1)], [group], reports, 1000);
    expect(b.map((x) => [x.code, x.nodeId ?? x.groupId])).toEqual([['NODE_NOT_ACTIVE', 'n3'], ['GROUP_PARTITIONED', 'orders'], ['NODE_INCAPABLE', 'n2']]);
    expect(b[1]).toMatchObject({ members: ['c', 'b'] });
    expect(b[1]!.message).toContain('c (node n3)');
    expect(b[2]).toMatchObject({ range: { min: 1, max: 1 } });
  });

  it('the highest common version ignores decommissioned nodes', () => {
    expect(highestCommonVersion([node('n1', 'active', 1, 3), node('n2', 'stale', 1, 2), node('n9', 'decommissioned', 1, 1)])).toBe(2);
  });
});

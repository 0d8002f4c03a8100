import { describe, expect, it } from '@jest/globals';
import type { ClusterVersionStatus } from '@changeover/contracts';
import { renderBlockers, renderStatus } from './cluster-version.js';

describe('cluster-version output', () => {
  it('groups blockers by code with what each means, each naming what blocks', () => {
    const text = renderBlockers([
      { code: 'NODE_INCAPABLE', nodeId: 'n4', range: { min: 1, max: 1 }, message: 'node n4 (agent 1.0.0) runs cluster versions 1, not 2; upgrade its agent first' },
      { code: 'GROUP_PARTITIONED', groupId: 'orders', members: ['m3'], message: 'group orders is partitioned: not reached within 1000 ms: m3 (node n3)' },
    ]);
    expect(text.split('\n')).toEqual([
      'NODE_INCAPABLE — a node\'s agent cannot run the target version: upgrade its agent first',
      '  • node n4 (agent 1.0.0) runs cluster versions 1, not 2; upgrade its agent first',
      'GROUP_PARTITIONED — members of a group did not all answer the validate round with the same view of its log',
      '  • group orders is partitioned: not reached within 1000 ms: m3 (node n3)',
    ]);
  });

  it('status shows progress while adjusting, nodes with ranges and groups with members', () => {
    const s: ClusterVersionStatus = {
      activeVersion: 1,
      candidateVersion: 2,
      ready: false,
      blockers: [],
      nodes: [{ nodeId: 'n1', status: 'active', agentVersion: '2.0.0', clusterVersions: { min: 1, max: 2 } }],
      groups: [{ groupId: 'orders', activeVersion: 2, lastSequence: 9, members: [{ memberId: 'm1', nodeId: 'n1' }] }],
      adjustment: { adjustmentId: 'adj-2-x', version: 2, state: 'adjusting', by: 'alice', startedAt: '2026-11-23T12:00:00.000Z', finishedAt: null, acknowledged: 3, total: 4 },
    };
    const text = renderStatus(s);
    expect(text).toContain('adjusting to 2 (adj-2-x, by alice): 3/4 members acknowledged');
    expect(text).toContain('n1                   active  2.0.0     1-2');
    expect(text).toContain('orders               2        m1@n1');
  });
});

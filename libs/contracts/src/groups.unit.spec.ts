import { describe, expect, it } from '@jest/globals';
import { applyMembership, emptyGroupView, type MembershipMessage } from './groups.js';

const at = '2026-11-23T12:00:00.000Z';
const fold = (entries: [number, MembershipMessage | null][]) => entries.reduce((v, [seq, m]) => applyMembership(v, seq, m), emptyGroupView('orders'));

describe('a group log folded', () => {
  it('members in JOIN order, a LEAVE removes only that node\'s member, the version is the last ADJUST_VERSION', () => {
    const v = fold([
      [3, { reason: 'JOIN', groupId: 'orders', memberId: 'a', nodeId: 'n1', at }],
      [5, { reason: 'JOIN', groupId: 'orders', memberId: 'b', nodeId: 'n2', at }],
      [6, { reason: 'LEAVE', groupId: 'orders', memberId: 'b', nodeId: 'n9', at, cause: '' }],
      [8, { reason: 'ADJUST_VERSION', groupId: 'orders', version: 2, adjustmentId: 'adj-1', at }],
      [9, { reason: 'LEAVE', groupId: 'orders', memberId: 'a', nodeId: 'n1', at, cause: 'upgrade' }],
      [11, { reason: 'JOIN', groupId: 'orders', memberId: 'a', nodeId: 'n1', at }],
    ]);
    expect(v).toEqual({ groupId: 'orders', lastSequence: 11, activeVersion: 2, lastAdjustmentId: 'adj-1', members: [{ memberId: 'b', nodeId: 'n2', joinedAt: 5 }, { memberId: 'a', nodeId: 'n1', joinedAt: 11 }] });
  });

  it('an unreadable entry only moves the sequence; an empty log runs version 1', () => {
    expect(emptyGroupView('g')).toMatchObject({ lastSequence: 0, activeVersion: 1, members: [] });
    expect(fold([[4, null]])).toMatchObject({ lastSequence: 4, activeVersion: 1, members: [] });
  });
});

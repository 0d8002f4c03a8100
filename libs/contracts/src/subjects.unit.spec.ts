import { describe, expect, it } from '@jest/globals';
import { ChangeoverError, parseSubject, subjects } from './index.js';

describe('subjects', () => {
  it('builds and parses every subject kind', () => {
    expect(subjects.node('n-1', 'propose')).toBe('changeover.node.n-1.propose');
    expect(parseSubject(subjects.node('n-1', 'commit'))).toEqual({ kind: 'node', nodeId: 'n-1', command: 'commit' });
    expect(parseSubject(subjects.class('web', 'propose'))).toEqual({ kind: 'class', classId: 'web', command: 'propose' });
    expect(parseSubject(subjects.agent('n_2', 'vote'))).toEqual({ kind: 'agent', nodeId: 'n_2', report: 'vote' });
    expect(parseSubject(subjects.registry('select-modules'))).toEqual({ kind: 'registry', op: 'select-modules' });
    expect(parseSubject(subjects.rollout('create'))).toEqual({ kind: 'rollout', op: 'create' });
    expect(parseSubject(subjects.event('rollout', 'vote-recorded'))).toEqual({ kind: 'event', aggregate: 'rollout', type: 'vote-recorded' });
    expect(parseSubject(subjects.groupMembership('g1'))).toEqual({ kind: 'group', groupId: 'g1' });
  });

  it.each(['a.b', 'n*', 'n>', '', 'x'.repeat(65), 'a b', 'é'])('refuses the unsafe id %j with INVALID_ID', (id) => {
    const attempt = () => subjects.node(id, 'propose');
    expect(attempt).toThrow(ChangeoverError);
    expect(attempt).toThrow(/not subject-safe/);
  });

  it.each(['other.node.a.propose', 'changeover.node.a.explode', 'changeover.node.a.b.propose', 'changeover.group.g.other', 'changeover.agent.a*.vote'])('refuses the malformed subject %s', (s) => {
    expect(() => parseSubject(s)).toThrow(ChangeoverError);
  });
});

import { describe, expect, it } from '@jest/globals';
import { assertId, ChangeoverError, ERROR_CODES, ErrorBody, HTTP_STATUS, isAgentReportSubject, isChangeoverError, parseSubject, subjects } from './index.js';

describe('subjects', () => {
  it('builds and parses every subject kind', () => {
    expect(subjects.node('n-1', 'propose')).toBe('changeover.node.n-1.propose');
    expect(parseSubject(subjects.node('n-1', 'commit'))).toEqual({ kind: 'node', nodeId: 'n-1', command: 'commit' });
    expect(parseSubject(subjects.class('web', 'propose'))).toEqual({ kind: 'class', classId: 'web', command: 'propose' });
    expect(parseSubject(subjects.agent('n_2', 'vote'))).toEqual({ kind: 'agent', nodeId: 'n_2', report: 'vote' });
    expect(parseSubject(subjects.registry('select-modules'))).toEqual({ kind: 'registry', op: 'select-modules' });
    expect(parseSubject(subjects.rollout('create'))).toEqual({ kind: 'rollout', op: 'create' });
    expect(parseSubject(subjects.event('rollout', 'votes-recorded'))).toEqual({ kind: 'event', aggregate: 'rollout', type: 'votes-recorded' });
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

describe('subject builders refuse what they cannot build', () => {
  it.each([
    ['an unknown command', () => subjects.node('n1', 'explode' as never)],
    ['an unknown report', () => subjects.agentAny('shout' as never)],
    ['an op with a dot', () => subjects.registry('a.b')],
    ['an op with a wildcard', () => subjects.rollout('>')],
    ['an upper-case event type', () => subjects.event('rollout', 'Created')],
    ['a non-string id', () => subjects.groupMembership(42 as never)],
  ])('%s', (_what, attempt) => {
    expect(attempt).toThrow(ChangeoverError);
  });

  it.each(['changeover', 'changeover.registry', 'changeover.registry.a.b', 'changeover.events.rollout', 'changeover.group.g', 'changeover.unknown.x'])('parseSubject refuses %s', (s) => {
    let caught: unknown;
    try {
      parseSubject(s);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ChangeoverError);
    expect((caught as ChangeoverError).code).toBe('VALIDATION_FAILED');
  });

  it('builds the wildcard subjects NATS permissions and consumers use', () => {
    expect(subjects.nodeAll('n1')).toBe('changeover.node.n1.>');
    expect(subjects.classAll('web')).toBe('changeover.class.web.>');
    expect(subjects.agentAll('n1')).toBe('changeover.agent.n1.>');
    expect(subjects.agentAny('vote')).toBe('changeover.agent.*.vote');
    expect(subjects.eventsAll).toBe('changeover.events.>');
    expect(subjects.groupsAll).toBe('changeover.group.*.membership');
  });
});

describe('errors', () => {
  it('round-trips a ChangeoverError through its body and maps every code to an HTTP status', () => {
    const e = new ChangeoverError('NODE_INCAPABLE', 'node n1 cannot run 3', { nodeId: 'n1' });
    expect(ErrorBody.parse(e.toBody())).toEqual({ code: 'NODE_INCAPABLE', message: 'node n1 cannot run 3', details: { nodeId: 'n1' } });
    const back = ChangeoverError.fromBody(e.toBody());
    expect(isChangeoverError(back, 'NODE_INCAPABLE')).toBe(true);
    for (const code of ERROR_CODES) expect(HTTP_STATUS[code]).toBeGreaterThanOrEqual(400);
    expect(isChangeoverError(new Error('x'))).toBe(false);
  });

  it('assertId names the kind and refuses non-strings', () => {
    expect(() => assertId('rollout', undefined)).toThrow(/rollout id undefined/);
    expect(assertId('node', 'n-1')).toBe('n-1');
  });
});

describe('isAgentReportSubject', () => {
  it("is true only for the node's own report subject", () => {
    expect(isAgentReportSubject('changeover.agent.n-1.vote', 'n-1', 'vote')).toBe(true);
    expect(isAgentReportSubject(subjects.agent('node_7', 'progress'), 'node_7', 'progress')).toBe(true);
    expect(isAgentReportSubject('changeover.agent.n-1.vote', 'n-2', 'vote')).toBe(false);
    expect(isAgentReportSubject('changeover.agent.n-1.vote', 'n-1', 'progress')).toBe(false);
    expect(isAgentReportSubject('changeover.agent.n-10.vote', 'n-1', 'vote')).toBe(false);
    expect(isAgentReportSubject('changeover.class.n-1.vote', 'n-1', 'vote')).toBe(false);
  });
});

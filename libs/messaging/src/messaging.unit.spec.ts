import { describe, expect, it } from '@jest/globals';
import { ClosedConnectionError, errors, NoRespondersError, RequestError, TimeoutError } from '@nats-io/transport-node';
import { ChangeoverError } from '@changeover/contracts';
import { assertSubject, defaultQueue, fromNatsError, RejectionCounter, subjectKind } from './index.js';

describe('queue groups', () => {
  it.each([
    ['changeover.registry.select-modules', 'registry'],
    ['changeover.rollout.create', 'rollout'],
    ['changeover.node.n1.propose', undefined],
    ['changeover.class.web.propose', undefined],
    ['changeover.agent.*.vote', undefined],
    ['changeover.events.>', undefined],
    ['other.thing', undefined],
  ])('%s → %s', (subject, queue) => expect(defaultQueue(subject)).toBe(queue));
});

describe('subject kinds for metric labels', () => {
  it.each([
    ['changeover.agent.n1.vote', 'agent'],
    ['changeover.events.rollout.created', 'event'],
    ['changeover.registry.x', 'registry'],
    ['changeover.WEIRD.x', 'other'],
    ['nats.thing', 'other'],
  ])('%s → %s', (subject, kind) => expect(subjectKind(subject)).toBe(kind));
});

describe('NATS errors become typed errors', () => {
  it.each([
    [new TimeoutError(), 'TIMEOUT'],
    [new RequestError('x', { cause: new TimeoutError() }), 'TIMEOUT'],
    [new NoRespondersError('s'), 'UNAVAILABLE'],
    [new RequestError('x', { cause: new NoRespondersError('s') }), 'UNAVAILABLE'],
    [new ClosedConnectionError(), 'UNAVAILABLE'],
    [errors.InvalidArgumentError.format('payload', 'max_payload size exceeded'), 'TOO_LARGE'],
    [new Error('something else'), 'UNAVAILABLE'],
    [new ChangeoverError('NOT_FOUND', 'kept'), 'NOT_FOUND'],
  ])('%s → %s', (err, code) => expect(fromNatsError(err, 'changeover.registry.x', 100).code).toBe(code));
});

describe('assertSubject', () => {
  it('accepts concrete subjects, and wildcards only where allowed', () => {
    expect(() => assertSubject('changeover.node.n1.propose')).not.toThrow();
    expect(() => assertSubject('changeover.agent.*.vote', { wildcards: true })).not.toThrow();
    expect(() => assertSubject('changeover.events.>', { wildcards: true })).not.toThrow();
  });

  it.each([['changeover.agent.*.vote'], ['a..b'], [''], ['a.>.b'], ['a b'], [42], ['x'.repeat(600)]])('refuses %j with VALIDATION_FAILED', (s) => {
    expect(() => assertSubject(s)).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED' }));
  });
});

describe('RejectionCounter', () => {
  it('counts by code', () => {
    const c = new RejectionCounter();
    c.count('changeover.agent.n1.vote', 'VALIDATION_FAILED');
    c.count('changeover.agent.n1.vote', 'VALIDATION_FAILED');
    c.count('changeover.registry.x', 'TOO_LARGE');
    expect(c.get()).toBe(3);
    expect(c.get('VALIDATION_FAILED')).toBe(2);
    expect(c.byCode()).toEqual({ VALIDATION_FAILED: 2, TOO_LARGE: 1 });
  });
});

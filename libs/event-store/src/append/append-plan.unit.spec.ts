import { describe, expect, it } from '@jest/globals';
import { planBatch, type AppendRequest } from './append-plan.js';
import { matchesExpectedVersion } from './expected-version.js';

const ev = (id: string) => ({ id, type: 'rollout.created', data: '{}', metadata: '{}' });
const req = (streamId: string, expected: AppendRequest['expected'], ...ids: string[]): AppendRequest => ({ streamId, expected, events: ids.map(ev) });

describe('expected version', () => {
  it('matches numbers exactly and the named forms by existence', () => {
    expect(matchesExpectedVersion(3, 3)).toBe(true);
    expect(matchesExpectedVersion(2, 3)).toBe(false);
    expect(matchesExpectedVersion(0, 0)).toBe(true);
    expect(matchesExpectedVersion('no-stream', 0)).toBe(true);
    expect(matchesExpectedVersion('no-stream', 1)).toBe(false);
    expect(matchesExpectedVersion('stream-exists', 0)).toBe(false);
    expect(matchesExpectedVersion('stream-exists', 4)).toBe(true);
    expect(matchesExpectedVersion('any', 9)).toBe(true);
  });
});

describe('planBatch', () => {
  it('lets later appends to the same stream see the earlier ones of the batch', () => {
    const { plans, rows } = planBatch([req('s', 0, 'a', 'b'), req('s', 2, 'c'), req('s', 2, 'd'), req('t', 'any', 'e')], new Map([['t', 5]]));
    expect(plans.map((p) => (p.ok ? `ok ${p.firstPosition}-${p.lastPosition}@${p.rowOffset}` : `conflict ${JSON.stringify(p.error.details)}`))).toEqual([
      'ok 1-2@0',
      'ok 3-3@2',
      'conflict {"streamId":"s","expected":2,"actual":3}',
      'ok 6-6@3',
    ]);
    expect(rows.ids).toEqual(['a', 'b', 'c', 'e']);
    expect(rows.positions).toEqual([1, 2, 3, 6]);
    expect(rows.streamIds).toEqual(['s', 's', 's', 't']);
  });

  it('does not let a rejected append move the version', () => {
    const { plans } = planBatch([req('s', 'stream-exists', 'a'), req('s', 'no-stream', 'b')], new Map());
    expect(plans.map((p) => p.ok)).toEqual([false, true]);
  });
});

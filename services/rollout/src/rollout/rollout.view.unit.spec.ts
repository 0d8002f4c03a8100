import { describe, expect, it } from '@jest/globals';
import { ChangeoverError } from '@changeover/contracts';
import { decide } from './rollout.decider.js';
import { fold, type ActiveState } from './rollout.state.js';
import { summarize } from './rollout.view.js';
import { assignment, at, createCommand, vote } from '../testing/fixtures.js';

const ids = (n: number) => Array.from({ length: n }, (_, i) => `n${i}`);

describe('rollout summary', () => {
  it('while voting names who is still to vote (the first thousand) and counts them all', () => {
    const created = decide(createCommand([assignment(ids(1500))]), fold([]));
    if (created instanceof ChangeoverError) throw created;
    let state = fold(created) as ActiveState;
    for (const n of ['n0', 'n1']) {
      const d = decide({ type: 'RecordVote', now: at(10), report: vote(n) }, state);
      if (d instanceof ChangeoverError) throw d;
      state = fold(d, state) as ActiveState;
    }
    const s = summarize(state, 4);
    expect(s.stuck?.reason).toMatch(/^waiting for 1498 vote\(s\) until /);
    expect(s.stuck?.nodes).toHaveLength(1000);
    expect(s.stuck?.nodes.slice(0, 2)).toEqual(['n2', 'n3']);
    expect(s.phases).toEqual({ voting: 1498, accepted: 2 });
  });
});

import { describe, expect, it } from '@jest/globals';
import { EVENT_SCHEMAS } from '@changeover/contracts';
import type { RolloutCommand } from './rollout.decider.js';
import type { RolloutEvent } from './rollout.events.js';
import { showSummary } from './rollout.view.js';
import { assignment, at, createCommand, progress, vote } from '../testing/fixtures.js';
import { given, types } from '../testing/decider.js';

const v = (n: string): RolloutCommand => ({ type: 'RecordVote', now: at(10), report: vote(n) });
const p = (report: ReturnType<typeof progress>, ms = 20): RolloutCommand => ({ type: 'RecordProgress', now: at(ms), report });
// Canary n1, then waves of 2: after the votes, n1 is mid-changeover.
const applying = () => [createCommand([assignment(['n1', 'n2', 'n3', 'n4'])], { waves: { canary: 1, size: '50%' } }), ...['n1', 'n2', 'n3', 'n4'].map(v)];
const pause: RolloutCommand = { type: 'Pause', now: at(30), by: 'alice', reason: 'incident 42' };

describe('rollout decider: operator pause', () => {
  it('pauses an applying rollout with who and why, in a valid event', () => {
    const d = given(...applying()).when(pause);
    expect(types(d)).toEqual(['rollout.paused']);
    const e = (d as RolloutEvent[])[0]!;
    expect(e.data).toMatchObject({ by: 'alice', reason: 'incident 42', committed: 1, failed: 0 });
    expect(EVENT_SCHEMAS['rollout.paused'].safeParse(e.data).success).toBe(true);
  });
  it('the paused state names the operator; show says why', () => {
    const g = given(...applying(), pause);
    expect(g.state).toMatchObject({ status: 'paused', by: 'alice', reason: 'incident 42' });
    if (g.state.status === 'initial') throw new Error('not created');
    expect(showSummary(g.state, 1).stuck?.reason).toBe('paused by operator alice: incident 42');
  });
  it('a node mid-changeover finishes while paused, and no new wave starts', () => {
    const g = given(...applying(), pause);
    expect(types(g.when(p(progress('n1', 'completed'))))).toEqual(['rollout.nodes-completed']);
    const after = given(...applying(), pause, p(progress('n1', 'completed')));
    expect(after.state.status).toBe('paused');
  });
  it('resume continues with the next wave and records its reason', () => {
    const g = given(...applying(), pause, p(progress('n1', 'completed')));
    const d = g.when({ type: 'Resume', now: at(40), by: 'bob', reason: 'incident over' });
    expect(types(d)).toEqual(['rollout.resumed', 'rollout.wave-started']);
    expect((d as RolloutEvent[])[0]!.data).toMatchObject({ by: 'bob', reason: 'incident over' });
    expect((d as RolloutEvent[])[1]!.data).toMatchObject({ wave: 1 });
  });
  it('resumed while a node is still mid-changeover: the next wave waits for it', () => {
    const g = given(...applying(), pause, { type: 'Resume', now: at(40), by: 'bob' });
    expect(g.state.status).toBe('applying');
    expect(types(g.when(p(progress('n1', 'completed'), 50)))).toEqual(['rollout.nodes-completed', 'rollout.wave-started']);
  });
  it('refuses to pause a rollout that is not applying', () => {
    expect(types(given(createCommand([assignment(['n1'])])).when(pause))).toBe('INVALID_STATE');
    expect(types(given(...applying(), pause).when(pause))).toBe('INVALID_STATE');
    expect(types(given().when(pause))).toBe('NOT_FOUND');
  });
});

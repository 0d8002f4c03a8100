import { describe, expect, it } from '@jest/globals';
import { ChangeoverError } from '@changeover/contracts';
import { decide, type RolloutCommand } from '../rollout/rollout.decider.js';
import { fold, initialState, type RolloutState } from '../rollout/rollout.state.js';
import type { RolloutEvent } from '../rollout/rollout.events.js';
import { onHello, react, resume, type Action } from './rollout.workflow.js';
import { assignment, at, createCommand, progress, vote } from '../testing/fixtures.js';

function run(...commands: RolloutCommand[]): { state: RolloutState; actions: Action[] } {
  let state = initialState();
  let actions: Action[] = [];
  for (const c of commands) {
    const events = decide(c, state);
    if (events instanceof ChangeoverError) throw events;
    actions = [];
    for (const e of events as RolloutEvent[]) {
      state = fold([e], state);
      actions.push(...react(state, e));
    }
  }
  return { state, actions };
}
const create = () => createCommand([assignment(['a1', 'a2'], undefined, 'web'), assignment(['b1'])]);

describe('rollout workflow', () => {
  it('proposes with one class broadcast per whole class, per node otherwise, and arms the vote timer', () => {
    const { actions } = run(create());
    expect(actions).toEqual([
      { kind: 'propose', selection: 0, to: { kind: 'class', classId: 'web' }, attempt: 0 },
      { kind: 'propose', selection: 1, to: { kind: 'nodes', nodeIds: ['b1'] }, attempt: 0 },
      { kind: 'schedule', timer: { name: 'vote', attempt: 0 }, at: at(30_000).toISOString() },
    ]);
  });
  it('commits each wave and arms its changeover deadline', () => {
    const { actions } = run(create(), ...['a1', 'a2', 'b1'].map((n) => ({ type: 'RecordVote', now: at(5), report: vote(n) }) as RolloutCommand));
    expect(actions.filter((a) => a.kind === 'commit')).toHaveLength(2);
    expect(actions).toContainEqual({ kind: 'schedule', timer: { name: 'wave', wave: 0 }, at: at(5 + 120_000).toISOString() });
  });
  it('asks to verify when the last node finished, and completes after verification', () => {
    const c = createCommand([assignment(['n1'])]);
    const done = run(c, { type: 'RecordVote', now: at(5), report: vote('n1') }, { type: 'RecordProgress', now: at(6), report: progress('n1', 'completed') });
    expect(done.actions).toEqual([{ kind: 'decide', command: 'Verify' }]);
    const verified = run(c, { type: 'RecordVote', now: at(5), report: vote('n1') }, { type: 'RecordProgress', now: at(6), report: progress('n1', 'completed') }, { type: 'Verify', now: at(7) });
    expect(verified.actions).toContainEqual({ kind: 'complete' });
  });
  it('aborts nodes in flight on cancel', () => {
    const { actions } = run(create(), { type: 'Cancel', now: at(5), by: 'bob', reason: 'stop' });
    expect(actions.filter((a) => a.kind === 'abort')).toHaveLength(2);
  });
  it('re-sends and re-arms from the state alone after a restart', () => {
    const { state } = run(create(), { type: 'RecordVote', now: at(5), report: vote('a1') });
    const actions = resume(state);
    expect(actions).toContainEqual({ kind: 'schedule', timer: { name: 'vote', attempt: 0 }, at: at(30_000).toISOString() });
    expect(actions).toContainEqual({ kind: 'propose', selection: 0, to: { kind: 'nodes', nodeIds: ['a2'] }, attempt: 0 });
  });
  it('on hello re-sends what the node is owed', () => {
    const voting = run(create()).state;
    expect(onHello(voting, 'b1')).toEqual([{ kind: 'propose', selection: 1, to: { kind: 'nodes', nodeIds: ['b1'] }, attempt: 0 }]);
    expect(onHello(voting, 'stranger')).toEqual([]);
    const committing = run(create(), ...['a1', 'a2', 'b1'].map((n) => ({ type: 'RecordVote', now: at(5), report: vote(n) }) as RolloutCommand)).state;
    expect(onHello(committing, 'a1')).toEqual([{ kind: 'commit', selection: 0, to: { kind: 'nodes', nodeIds: ['a1'] }, attempt: 0, forced: false }]);
  });
});

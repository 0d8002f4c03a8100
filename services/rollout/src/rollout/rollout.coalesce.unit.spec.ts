import { describe, expect, it } from '@jest/globals';
import { ChangeoverError, EVENT_SCHEMAS, NODE_LIST_CHUNK } from '@changeover/contracts';
import { coalesce, MERGED_EVENT_BUDGET } from './rollout.coalesce.js';
import { decide, type RolloutCommand } from './rollout.decider.js';
import type { RolloutEvent } from './rollout.events.js';
import { evolve, fold, initialState, type RolloutState } from './rollout.state.js';
import { assignment, at, createCommand, inventory, progress, selected, vote } from '../testing/fixtures.js';

/** Decides commands one by one (as the runner does for a batch) and returns the state and every event. */
function run(commands: RolloutCommand[], from: RolloutState = initialState()): { state: RolloutState; events: RolloutEvent[] } {
  let state = from;
  const events: RolloutEvent[] = [];
  for (const c of commands) {
    const d = decide(c, state);
    if (d instanceof ChangeoverError) throw d;
    for (const e of d) state = evolve(state, e);
    events.push(...d);
  }
  return { state, events };
}

const ids = (n: number, prefix = 'n') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
/** Folds from scratch: evolve mutates node maps in place, so each fold needs its own history. */
const stateOf = (events: RolloutEvent[]) => {
  const s = fold(structuredClone(events));
  return s.status === 'initial' ? s : { ...s, updatedAt: '' };
};

describe('coalesce: per-node events merged', () => {
  it('a batch of votes becomes one event and folds to the same state', () => {
    const nodes = ids(50);
    const created = run([createCommand([assignment(nodes)])]);
    const batch = run(nodes.map((n, i) => ({ type: 'RecordVote', now: at(10 + i), report: vote(n, i === 7 ? 'veto' : 'accept') })), fold(structuredClone(created.events)));
    const merged = coalesce(batch.events);
    expect(batch.events.filter((e) => e.type === 'rollout.votes-recorded')).toHaveLength(50);
    expect(merged.map((e) => e.type)).toEqual(['rollout.votes-recorded', 'rollout.blocked']);
    expect(merged[0]!.type === 'rollout.votes-recorded' && merged[0]!.data.votes.map((v) => v.nodeId)).toEqual(nodes);
    expect(stateOf([...created.events, ...merged])).toEqual(stateOf([...created.events, ...batch.events]));
    for (const e of merged) expect(EVENT_SCHEMAS[e.type].safeParse(e.data).success).toBe(true);
  });

  it('completions list each distinct inventory once and fold to the same state', () => {
    const nodes = ids(30);
    const voted = run([createCommand([assignment(nodes)]), ...nodes.map((n): RolloutCommand => ({ type: 'RecordVote', now: at(10), report: vote(n) }))]);
    const other = inventory([selected('app', { version: '2.0.0' })]);
    const batch = run(nodes.map((n, i) => ({ type: 'RecordProgress', now: at(20 + i), report: progress(n, 'completed', i % 3 === 0 ? { inventory: other } : {}) })), voted.state);
    const merged = coalesce(batch.events);
    expect(merged.map((e) => e.type)).toEqual(['rollout.nodes-completed']);
    const data = merged[0]!.type === 'rollout.nodes-completed' ? merged[0]!.data : null;
    expect(data?.nodes).toHaveLength(30);
    expect(data?.inventories).toHaveLength(2);
    expect(data?.nodes.filter((n) => data.inventories[n.inventory]!.active[0]!.version === '2.0.0').map((n) => n.nodeId)).toEqual(nodes.filter((_, i) => i % 3 === 0));
    const folded = stateOf([...voted.events, ...merged]);
    expect(folded).toEqual(stateOf([...voted.events, ...batch.events]));
    expect(folded.status).toBe('verifying');
  });

  it('only adjacent events of one attempt merge; the others keep their order', () => {
    const nodes = ids(3);
    const created = run([createCommand([assignment(nodes)])]);
    const v = (n: string, attempt: number) => ({ type: 'rollout.votes-recorded', data: { rolloutId: 'r1', attempt, votes: [{ nodeId: n, decision: 'accept', verdicts: [] }], at: at(1).toISOString() } }) as RolloutEvent;
    const blocked = { type: 'rollout.blocked', data: { rolloutId: 'r1', attempt: 0, vetoes: [], vetoCount: 0, vetoingNodes: 0, at: at(2).toISOString() } } as RolloutEvent;
    const merged = coalesce([v('n0', 0), v('n1', 0), blocked, v('n2', 0), v('n0', 1)]);
    expect(merged.map((e) => (e.type === 'rollout.votes-recorded' ? `${e.data.attempt}:${e.data.votes.map((x) => x.nodeId).join(',')}` : e.type))).toEqual(['0:n0,n1', 'rollout.blocked', '0:n2', '1:n0']);
    expect(created.events).toHaveLength(2);
  });

  it('splits so that no merged event exceeds NODE_LIST_CHUNK nodes or the size budget', () => {
    const votes = ids(NODE_LIST_CHUNK + 10).map((n) => ({ type: 'rollout.votes-recorded', data: { rolloutId: 'r1', attempt: 0, votes: [{ nodeId: n, decision: 'accept', verdicts: [] }], at: at(1).toISOString() } }) as RolloutEvent);
    const sizes = coalesce(votes).map((e) => (e.type === 'rollout.votes-recorded' ? e.data.votes.length : 0));
    expect(sizes.length).toBe(2);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(NODE_LIST_CHUNK);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(NODE_LIST_CHUNK + 10);
    // Vetoes with long messages: the budget cuts first.
    const message = 'x'.repeat(4000);
    const big = ids(200).map((n) => ({ type: 'rollout.votes-recorded', data: { rolloutId: 'r1', attempt: 0, votes: [{ nodeId: n, decision: 'veto', verdicts: [{ processId: 'p', decision: 'veto', reason: 'CUSTOM', message }] }], at: at(1).toISOString() } }) as RolloutEvent);
    const merged = coalesce(big);
    expect(merged.length).toBeGreaterThan(1);
    for (const e of merged) expect(JSON.stringify(e.data).length).toBeLessThanOrEqual(MERGED_EVENT_BUDGET + 1024);
    expect(merged.flatMap((e) => (e.type === 'rollout.votes-recorded' ? e.data.votes.map((v) => v.nodeId) : []))).toEqual(ids(200));
  });

  it('never gives a node another inventory that claims the same digest', () => {
    // Both inventories below carry the same digest (the fixture's), with different content.
    const one = inventory();
    const two = inventory([selected('app', { version: '9.9.9' })]);
    expect(one.digest).toBe(two.digest);
    const e = (nodeId: string, inv: typeof one) => ({ type: 'rollout.nodes-completed', data: { rolloutId: 'r1', nodes: [{ nodeId, inventory: 0, bytesFetched: 0 }], inventories: [inv], at: at(1).toISOString() } }) as RolloutEvent;
    const [merged] = coalesce([e('a', one), e('b', two), e('c', structuredClone(one))]);
    const data = merged!.type === 'rollout.nodes-completed' ? merged!.data : null;
    expect(data?.inventories).toEqual([one, two]);
    expect(data?.nodes.map((n) => n.inventory)).toEqual([0, 1, 0]);
  });


  it('leaves its input unchanged', () => {
    const a = { type: 'rollout.votes-recorded', data: { rolloutId: 'r1', attempt: 0, votes: [{ nodeId: 'a', decision: 'accept', verdicts: [] }], at: at(1).toISOString() } } as RolloutEvent;
    const b = { type: 'rollout.votes-recorded', data: { rolloutId: 'r1', attempt: 0, votes: [{ nodeId: 'b', decision: 'accept', verdicts: [] }], at: at(2).toISOString() } } as RolloutEvent;
    const before = structuredClone([a, b]);
    coalesce([a, b]);
    expect([a, b]).toEqual(before);
  });
});

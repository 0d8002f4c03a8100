import { describe, expect, it } from '@jest/globals';
import { EVENT_SCHEMAS, type EventData } from '@changeover/contracts';
import { scopeOf, type RolloutCommand } from './rollout.decider.js';
import { fold, type ActiveState } from './rollout.state.js';
import type { RolloutEvent } from './rollout.events.js';
import { react, whyIgnored } from '../workflow/rollout.workflow.js';
import { assignment, at, createCommand, inventory, progress, selected, vote } from '../testing/fixtures.js';
import { given, types } from '../testing/decider.js';

/** Given the events these commands produce, when `command`, then the returned decision. */
const three = () => createCommand([assignment(['n1', 'n2', 'n3'])]);
const v = (report: ReturnType<typeof vote>, ms = 10): RolloutCommand => ({ type: 'RecordVote', now: at(ms), report });
const p = (report: ReturnType<typeof progress>, ms = 20): RolloutCommand => ({ type: 'RecordProgress', now: at(ms), report });

describe('rollout decider: create', () => {
  it('creates and proposes attempt 0 to every node', () => {
    const d = given().when(three());
    expect(types(d)).toEqual(['rollout.created', 'rollout.proposed']);
    expect((d as RolloutEvent[])[1]!.data).toMatchObject({ attempt: 0, nodes: 3 });
  });
  it('refuses an empty target set', () => {
    expect(types(given().when(createCommand([])))).toBe('VALIDATION_FAILED');
  });
  it('is idempotent for the same client id and content, conflicts otherwise', () => {
    expect(given(three()).when(three())).toEqual([]);
    expect(types(given(three()).when({ ...three(), createdBy: 'mallory' }))).toBe('CONFLICT');
  });
  it('commands on an unknown rollout are NOT_FOUND', () => {
    expect(types(given().when(v(vote('n1'))))).toBe('NOT_FOUND');
  });
});

describe('rollout decider: votes', () => {
  it('records a vote and ignores its duplicate', () => {
    const g = given(three(), v(vote('n1')));
    expect(types(given(three()).when(v(vote('n1'))))).toEqual(['rollout.votes-recorded']);
    expect(g.when(v(vote('n1')))).toEqual([]);
    expect(whyIgnored(v(vote('n1')), g.state)).toBe('duplicate-vote');
  });
  it("records a vote's objections, not its processes' accepts", () => {
    const recorded = (report: ReturnType<typeof vote>) => ((given(three()).when(v(report)) as RolloutEvent[])[0]!.data as EventData<'rollout.votes-recorded'>).votes[0];
    expect(recorded(vote('n1'))).toEqual({ nodeId: 'n1', decision: 'accept', verdicts: [] });
    const objection = { processId: 'db', decision: 'veto' as const, reason: 'PROCESS_BUSY' as const, message: 'compacting' };
    expect(recorded(vote('n1', 'veto', { verdicts: [{ processId: 'web', decision: 'accept' }, objection] }))).toEqual({ nodeId: 'n1', decision: 'veto', verdicts: [objection] });
    // A forced node accepts over its processes' vetoes: they stay on record.
    expect(recorded(vote('n1', 'accept', { verdicts: [objection] }))).toEqual({ nodeId: 'n1', decision: 'accept', verdicts: [objection] });
  });
  it('accepts on the last accept and starts the first wave', () => {
    const d = given(three(), v(vote('n1')), v(vote('n2'))).when(v(vote('n3')));
    expect(types(d)).toEqual(['rollout.votes-recorded', 'rollout.accepted', 'rollout.wave-started']);
    expect((d as RolloutEvent[])[2]!.data).toMatchObject({ wave: 0, nodes: ['n1', 'n2', 'n3'] });
  });
  it('atomic: one veto blocks every node and names node, process, reason and retry-after', () => {
    const d = given(three(), v(vote('n1')), v(vote('n2', 'veto'))).when(v(vote('n3')));
    expect(types(d)).toEqual(['rollout.votes-recorded', 'rollout.blocked']);
    expect((d as RolloutEvent[])[1]!.data).toMatchObject({ vetoes: [{ nodeId: 'n2', processId: 'db', reason: 'PROCESS_BUSY', message: 'compacting', retryAfterMs: 60_000 }] });
  });
  it('quorum: tolerates k vetoing nodes and leaves them out', () => {
    const g = given(createCommand([assignment(['n1', 'n2', 'n3'])], { vote: { mode: 'quorum', toleratedVetoes: 1 } }), v(vote('n1')), v(vote('n2', 'veto')));
    const d = g.when(v(vote('n3')));
    expect(types(d)).toEqual(['rollout.votes-recorded', 'rollout.nodes-excluded', 'rollout.accepted', 'rollout.wave-started']);
    expect((d as RolloutEvent[])[1]!.data).toMatchObject({ nodeIds: ['n2'] });
    expect((d as RolloutEvent[])[2]!.data).toMatchObject({ excluded: 1, nodes: 2 });
    expect((d as RolloutEvent[])[3]!.data).toMatchObject({ nodes: ['n1', 'n3'] });
  });
  it('quorum: more than k vetoing nodes block', () => {
    const g = given(createCommand([assignment(['n1', 'n2', 'n3'])], { vote: { mode: 'quorum', toleratedVetoes: 1 } }), v(vote('n1', 'veto')), v(vote('n2', 'veto')));
    expect(types(g.when(v(vote('n3'))))).toEqual(['rollout.votes-recorded', 'rollout.blocked']);
  });
  it('refuses a vote from a node not in the rollout and a vote for another rollout', () => {
    expect(types(given(three()).when(v(vote('stranger'))))).toBe('NOT_IN_ROLLOUT');
    expect(types(given(three()).when(v(vote('n1', 'accept', { rolloutId: 'other' }))))).toBe('VALIDATION_FAILED');
  });
  it('ignores votes of an older attempt, dry-run votes and late votes', () => {
    const blocked = given(three(), v(vote('n1', 'veto')), v(vote('n2')), v(vote('n3')));
    expect(blocked.state.status).toBe('blocked');
    const revoted = given(three(), v(vote('n1', 'veto')), v(vote('n2')), v(vote('n3')), { type: 'Revote', now: at(30), by: 'bob', reason: 'db done' });
    expect(revoted.when(v(vote('n1')))).toEqual([]);
    expect(whyIgnored(v(vote('n1')), revoted.state)).toBe('stale-attempt');
    expect(given(three()).when(v(vote('n1', 'accept', { dryRun: true })))).toEqual([]);
    const late = given(createCommand([assignment(['n1', 'n2'])]), v(vote('n1', 'veto')), { type: 'VoteTimeout', now: at(60_000), attempt: 0 });
    expect(late.state.status).toBe('blocked');
    expect(late.when(v(vote('n2')))).toEqual([]);
    expect(whyIgnored(v(vote('n2')), late.state)).toBe('late-vote');
  });
  it('a node with no module for its processor type vetoes PROCESSOR_UNSUPPORTED', () => {
    const c = createCommand([assignment(['n1', 'n2'])], {}, { unsupported: [{ nodeId: 'n2', package: 'extra', processorType: 'arm64' }] });
    const d = given(c, v(vote('n1'))).when(v(vote('n2')));
    expect(types(d)).toEqual(['rollout.votes-recorded', 'rollout.blocked']);
    expect((d as RolloutEvent[])[1]!.data).toMatchObject({ vetoes: [{ nodeId: 'n2', reason: 'PROCESSOR_UNSUPPORTED', processId: 'orchestrator' }] });
  });
});

describe('rollout decider: vote timeout and unreachable nodes', () => {
  const timeout = (ms = 30_000, attempt = 0): RolloutCommand => ({ type: 'VoteTimeout', now: at(ms), attempt });
  it('does nothing before the deadline or for another attempt', () => {
    expect(given(three()).when(timeout(29_999))).toEqual([]);
    expect(given(three()).when(timeout(30_000, 7))).toEqual([]);
  });
  it('veto policy: silent nodes count as NO_ANSWER vetoes and block', () => {
    const d = given(three(), v(vote('n1'))).when(timeout());
    expect(types(d)).toEqual(['rollout.node-unreachable', 'rollout.blocked']);
    expect((d as RolloutEvent[])[0]!.data).toMatchObject({ nodeIds: ['n2', 'n3'], treatedAs: 'veto' });
    expect((d as RolloutEvent[])[1]!.data).toMatchObject({ vetoes: [{ nodeId: 'n2', reason: 'NO_ANSWER' }, { nodeId: 'n3', reason: 'NO_ANSWER' }] });
  });
  it('exclude policy: silent nodes are left out and the rest goes ahead', () => {
    const d = given(createCommand([assignment(['n1', 'n2'])], { unreachable: 'exclude' }), v(vote('n1'))).when(timeout());
    expect(types(d)).toEqual(['rollout.node-unreachable', 'rollout.accepted', 'rollout.wave-started']);
    expect((d as RolloutEvent[])[2]!.data).toMatchObject({ nodes: ['n1'] });
  });
  it('defer policy: a silent node gets its own wave when it votes later', () => {
    const g = given(createCommand([assignment(['n1', 'n2'])], { unreachable: 'defer' }), v(vote('n1')), timeout());
    expect(g.state.status).toBe('applying');
    const d = g.when(v(vote('n2'), 40_000));
    expect(types(d)).toEqual(['rollout.votes-recorded', 'rollout.wave-started']);
    expect((d as RolloutEvent[])[1]!.data).toMatchObject({ wave: 1, nodes: ['n2'] });
  });
});

describe('rollout decider: force, revote, cancel, resume', () => {
  const blocked = () => [three(), v(vote('n1', 'veto')), v(vote('n2')), v(vote('n3'))];
  it('force is refused unless blocked', () => {
    expect(types(given(three()).when({ type: 'Force', now: at(50), by: 'bob', reason: 'go' }))).toBe('INVALID_STATE');
  });
  it('force records who and why, accepts the vetoing nodes and starts the wave', () => {
    const d = given(...blocked()).when({ type: 'Force', now: at(50), by: 'bob', reason: 'maintenance window' });
    expect(types(d)).toEqual(['rollout.forced', 'rollout.accepted', 'rollout.wave-started']);
    expect((d as RolloutEvent[])[0]!.data).toMatchObject({ by: 'bob', reason: 'maintenance window' });
    expect((d as RolloutEvent[])[2]!.data).toMatchObject({ nodes: ['n1', 'n2', 'n3'] });
  });
  it('forcing some vetoing nodes leaves the rollout blocked on the others', () => {
    const g = given(three(), v(vote('n1', 'veto')), v(vote('n2', 'veto')), v(vote('n3')));
    const d = g.when({ type: 'Force', now: at(50), by: 'bob', reason: 'n1 only', nodes: ['n1'] });
    expect(types(d)).toEqual(['rollout.forced', 'rollout.blocked']);
    expect((d as RolloutEvent[])[1]!.data).toMatchObject({ vetoes: [{ nodeId: 'n2' }] });
    expect(types(g.when({ type: 'Force', now: at(50), by: 'bob', reason: 'x', nodes: ['ghost'] }))).toBe('NOT_IN_ROLLOUT');
  });
  it('revote starts a new attempt', () => {
    const d = given(...blocked()).when({ type: 'Revote', now: at(50), by: 'bob', reason: 'retry' });
    expect(types(d)).toEqual(['rollout.revote-requested', 'rollout.proposed']);
    expect((d as RolloutEvent[])[1]!.data).toMatchObject({ attempt: 1 });
    const g = given(...blocked(), { type: 'Revote', now: at(50), by: 'bob', reason: 'retry' });
    expect(g.state).toMatchObject({ status: 'voting', attempt: 1 });
    expect(types(g.when(v(vote('n1', 'accept', { attempt: 1 }))))).toEqual(['rollout.votes-recorded']);
    expect(types(given(three()).when({ type: 'Revote', now: at(50), by: 'bob', reason: '' }))).toBe('INVALID_STATE');
  });
  it('cancel ends any live rollout, not a finished one', () => {
    expect(types(given(...blocked()).when({ type: 'Cancel', now: at(50), by: 'bob', reason: 'no' }))).toEqual(['rollout.cancelled']);
    const done = given(...blocked(), { type: 'Cancel', now: at(50), by: 'bob', reason: 'no' });
    expect(types(done.when({ type: 'Cancel', now: at(60), by: 'bob', reason: 'again' }))).toBe('INVALID_STATE');
  });
});

describe('rollout decider: waves, thresholds, verification', () => {
  const four = (p: Record<string, unknown> = {}) => createCommand([assignment(['n1', 'n2', 'n3', 'n4'])], { waves: { canary: 1, size: '50%' }, ...p });
  const accepted = (p: Record<string, unknown> = {}) => [four(p), ...['n1', 'n2', 'n3', 'n4'].map((n) => v(vote(n)))];
  it('canary first, then waves by percentage as each meets its success threshold', () => {
    const g = given(...accepted());
    expect(g.events.filter((e) => e.type === 'rollout.wave-started').map((e) => e.data)).toMatchObject([{ wave: 0, nodes: ['n1'] }]);
    const d = g.when(p(progress('n1', 'completed')));
    expect(types(d)).toEqual(['rollout.nodes-completed', 'rollout.wave-started']);
    expect((d as RolloutEvent[])[1]!.data).toMatchObject({ wave: 1, nodes: ['n2', 'n3'] });
    const g2 = given(...accepted(), p(progress('n1', 'completed')), p(progress('n2', 'completed')));
    expect(types(g2.when(p(progress('n3', 'completed'))))).toEqual(['rollout.nodes-completed', 'rollout.wave-started']);
  });
  it('a wave below its success threshold holds the next wave until it is met', () => {
    const g = given(...accepted({ waves: { canary: 0, size: 2, successThreshold: 1 } }));
    expect(types(g.when(p(progress('n1', 'completed'))))).toEqual(['rollout.nodes-completed']);
  });
  it('ignores a duplicate completion and live progress; requires an inventory', () => {
    const g = given(...accepted(), p(progress('n1', 'completed')));
    expect(g.when(p(progress('n1', 'completed')))).toEqual([]);
    expect(whyIgnored(p(progress('n1', 'completed')), g.state)).toBe('duplicate-completion');
    expect(g.when(p(progress('n2', 'fetching')))).toEqual([]);
    expect(types(g.when(p(progress('n2', 'completed', { inventory: undefined }))))).toBe('VALIDATION_FAILED');
    expect(types(g.when(p(progress('ghost', 'completed'))))).toBe('NOT_IN_ROLLOUT');
  });
  it('crossing the error threshold pauses (default) and resume starts the next wave', () => {
    const g = given(...accepted());
    const d = g.when(p(progress('n1', 'failed', { error: { code: 'HEALTH_CHECK', message: 'down' } })));
    expect(types(d)).toEqual(['rollout.node-failed', 'rollout.paused']);
    expect((d as RolloutEvent[])[1]!.data).toMatchObject({ failed: 1, committed: 1 });
    const paused = given(...accepted(), p(progress('n1', 'failed')));
    expect(types(paused.when({ type: 'Resume', now: at(90), by: 'bob' }))).toEqual(['rollout.resumed', 'rollout.wave-started']);
  });
  it('crossing the error threshold with abort policy aborts and regresses the changed nodes', () => {
    const g = given(...accepted({ waves: { canary: 0, size: 2 }, onErrorThreshold: 'abort' }), p(progress('n1', 'completed')));
    const d = g.when(p(progress('n2', 'failed')));
    expect(types(d)).toEqual(['rollout.node-failed', 'rollout.aborted', 'rollout.regress-requested']);
    expect((d as RolloutEvent[])[2]!.data).toMatchObject({ nodes: ['n1'], to: 'previous', by: 'system' });
  });
  it('tolerates failures under the error threshold', () => {
    const g = given(...accepted({ waves: { canary: 0, size: 4, successThreshold: 0.5 }, errorThreshold: 0.5 }), p(progress('n1', 'completed')));
    expect(types(g.when(p(progress('n2', 'failed'))))).toEqual(['rollout.node-failed']);
  });
  it('a wave timeout fails the nodes still changing over', () => {
    const g = given(...accepted());
    expect(g.when({ type: 'WaveTimeout', now: at(1000), wave: 0 })).toEqual([]);
    const d = g.when({ type: 'WaveTimeout', now: at(200_000), wave: 0 });
    expect(types(d)).toEqual(['rollout.node-failed', 'rollout.paused']);
    expect((d as RolloutEvent[])[0]!.data).toMatchObject({ nodeId: 'n1', code: 'TIMEOUT' });
  });
  it('when every node finished the rollout verifies, reports discrepancies, completes', () => {
    const g = given(createCommand([assignment(['n1'], [selected('app', { consumes: ['auth-api@^1'], requires: { lib: '^2.0.0' } })])]), v(vote('n1')), p(progress('n1', 'completed', { inventory: inventory([selected('app', { consumes: ['auth-api@^1'], requires: { lib: '^2.0.0' } })]) })));
    expect(g.state.status).toBe('verifying');
    const d = g.when({ type: 'Verify', now: at(100) });
    expect(types(d)).toEqual(['rollout.dependency-discrepancy', 'rollout.dependency-discrepancy', 'rollout.verified', 'rollout.completed']);
    expect((d as RolloutEvent[]).slice(0, 2).map((e) => e.data)).toMatchObject([
      { discrepancy: { kind: 'PACKAGE_REQUIREMENT', nodeId: 'n1', package: 'app@1.0.0', missing: 'lib@^2.0.0' } },
      { discrepancy: { kind: 'API_UNPROVIDED', nodeId: 'n1', missing: 'auth-api@^1' } },
    ]);
    expect(given(three()).when({ type: 'Verify', now: at(100) })).toEqual([]);
  });
  it('leaves out of the fleet\'s provider count only the nodes it checks with their own reports, never a whole class', () => {
    // A class rollout: n1 completes (checked with its reported inventory), n2 fails (no inventory, so
    // the registry counts what it holds of it), and a node that joins the class later is in no list at all.
    const g = given(createCommand([assignment(['n1', 'n2'], [selected('app')], 'web')], { waves: { canary: 0, size: 2 }, errorThreshold: 1 }), v(vote('n1')), v(vote('n2')), p(progress('n1', 'completed')), p(progress('n2', 'failed')));
    expect(g.state.status).toBe('verifying');
    expect(scopeOf(g.state as ActiveState)).toEqual({ excludeClasses: [], excludeNodes: ['n1'] });
  });
  it('API providers are committed before their consumers', () => {
    const c = createCommand([assignment(['c1'], [selected('web', { consumes: ['billing-api@^2'] })]), assignment(['p1'], [selected('billing', { provides: ['billing-api@2.1.0'] })])], { waves: { canary: 0, size: 10 } });
    const g = given(c, v(vote('c1')), v(vote('p1')));
    expect(g.events.filter((e) => e.type === 'rollout.wave-started').map((e) => e.data)).toMatchObject([{ wave: 0, nodes: ['p1'] }]);
    expect(types(g.when(p(progress('p1', 'completed'))))).toEqual(['rollout.nodes-completed', 'rollout.wave-started']);
  });
});

describe('rollout decider: regress', () => {
  const completed = () => [createCommand([assignment(['n1', 'n2'])]), v(vote('n1')), v(vote('n2')), p(progress('n1', 'completed')), p(progress('n2', 'completed')), { type: 'Verify', now: at(100) } as RolloutCommand];
  it('regresses every changed node of a rollout, or one node to a named version', () => {
    const g = given(...completed());
    expect(g.state.status).toBe('completed');
    const all = g.when({ type: 'Regress', now: at(200), by: 'bob', to: { kind: 'previous' }, reason: 'bad' });
    expect((all as RolloutEvent[])[0]!.data).toMatchObject({ nodes: ['n1', 'n2'], to: 'previous' });
    const one = g.when({ type: 'Regress', now: at(200), by: 'bob', nodes: ['n2'], to: { kind: 'version', package: 'app', version: '0.9.0' }, reason: '' });
    expect((one as RolloutEvent[])[0]!.data).toMatchObject({ nodes: ['n2'], to: 'app@0.9.0' });
  });
  it('records a regressed node and refuses nodes that never changed over', () => {
    const g = given(...completed(), { type: 'Regress', now: at(200), by: 'bob', nodes: ['n1'], to: { kind: 'previous' }, reason: '' });
    const back = inventory([selected('app', { version: '0.9.0' })]);
    const regressed = g.when(p(progress('n1', 'regressed', { inventory: back }), 300));
    expect(types(regressed)).toEqual(['rollout.node-regressed']);
    // The node's inventory after the regression rides along: the registry takes it from the event.
    expect((regressed as RolloutEvent[])[0]!.data).toEqual({ rolloutId: 'r1', nodeId: 'n1', inventory: back, at: expect.any(String) });
    expect((g.when(p(progress('n1', 'regressed'), 300)) as RolloutEvent[])[0]!.data).not.toHaveProperty('inventory');
    // A regression the node could not carry out ends as a named failure, and nothing stays "regressing".
    const failed = g.when(p(progress('n1', 'failed', { error: { code: 'UNTRUSTED_KEY', message: 'retired key' } }), 300));
    expect(failed).toEqual([expect.objectContaining({ type: 'rollout.node-failed', data: expect.objectContaining({ nodeId: 'n1', code: 'UNTRUSTED_KEY', message: 'the regression failed: retired key' }) })]);
    const after = fold(failed as RolloutEvent[], g.state);
    expect(after.status !== 'initial' && { regressing: after.counts.regressing, failed: after.counts.failed }).toEqual({ regressing: 0, failed: 1 });
    expect(types(given(three()).when({ type: 'Regress', now: at(200), by: 'bob', to: { kind: 'previous' }, reason: '' }))).toBe('INVALID_STATE');
    expect(types(g.when({ type: 'Regress', now: at(200), by: 'bob', nodes: ['zz'], to: { kind: 'previous' }, reason: '' }))).toBe('NOT_IN_ROLLOUT');
  });
});

describe('rollout decider: fleets larger than one event holds', () => {
  const ids = (n: number) => Array.from({ length: n }, (_, i) => `node-with-a-long-name-${String(i).padStart(6, '0')}`);
  const big = () => createCommand([assignment(ids(12_001), [selected('app')], 'web'), assignment(['n-small'], [selected('tool')])]);

  it('creates with the node lists in parts, each event small, and the state holds every node', () => {
    const g = given();
    const d = g.when(big()) as RolloutEvent[];
    expect(types(d)).toEqual(['rollout.created', 'rollout.nodes-added', 'rollout.nodes-added', 'rollout.nodes-added', 'rollout.nodes-added', 'rollout.proposed']);
    expect(d.map((e) => JSON.stringify(e.data).length).every((n) => n < 512 * 1024)).toBe(true);
    expect((d[0]!.data as { assignments: { nodes: string[] }[] }).assignments.map((a) => a.nodes.length)).toEqual([0, 0]);
    expect(d.slice(1, 5).map((e) => [(e.data as { selection: number }).selection, (e.data as { nodes: string[] }).nodes.length])).toEqual([[0, 5000], [0, 5000], [0, 2001], [1, 1]]);
    const state = fold(d);
    expect(state.status !== 'initial' && { voting: state.counts.voting, web: state.assignments[0]!.nodes.length, tool: state.assignments[1]!.nodes }).toEqual({ voting: 12_002, web: 12_001, tool: ['n-small'] });
    // The created event's own lists were not grown by folding it.
    expect((d[0]!.data as { assignments: { nodes: string[] }[] }).assignments[0]!.nodes).toEqual([]);
  });

  it('starts a large wave in parts and commits it once, with the last part, as one class broadcast', () => {
    const all = [...ids(12_001), 'n-small'];
    const g = given(big(), ...all.slice(0, -1).map((n) => v(vote(n))));
    const d = g.when(v(vote('n-small'))) as RolloutEvent[];
    expect(types(d)).toEqual(['rollout.votes-recorded', 'rollout.accepted', 'rollout.wave-started', 'rollout.wave-started', 'rollout.wave-started']);
    expect(d.slice(2).map((e) => e.data)).toEqual([0, 1, 2].map((part) => expect.objectContaining({ wave: 0, part, parts: 3 })));
    let state = g.state;
    const actions = d.flatMap((e) => {
      state = fold([e], state);
      return react(state, e);
    });
    const commits = actions.filter((a) => a.kind === 'commit');
    expect(commits).toHaveLength(2);
    expect(commits).toEqual(expect.arrayContaining([
      expect.objectContaining({ kind: 'commit', selection: 0, to: { kind: 'class', classId: 'web' } }),
      expect.objectContaining({ kind: 'commit', selection: 1, to: { kind: 'nodes', nodeIds: ['n-small'] } }),
    ]));
    expect(state.status !== 'initial' && { committing: state.counts.committing, wave: state.waves[0]!.nodes.length }).toEqual({ committing: 12_002, wave: 12_002 });
  });

  /** Every event small enough for the event store and valid by its schema. */
  const bounded = (d: RolloutEvent[]) => {
    for (const e of d) {
      expect(JSON.stringify(e.data).length).toBeLessThan(512 * 1024);
      expect(EVENT_SCHEMAS[e.type].safeParse(e.data).error).toBeUndefined();
    }
  };

  it('names 12,001 silent nodes in parts, and blocks with a bounded list of vetoes and their full counts', () => {
    const g = given(big(), v(vote('n-small')));
    const d = g.when({ type: 'VoteTimeout', now: at(30_000), attempt: 0 }) as RolloutEvent[];
    expect(types(d)).toEqual(['rollout.node-unreachable', 'rollout.node-unreachable', 'rollout.node-unreachable', 'rollout.blocked']);
    bounded(d);
    expect(d.slice(0, 3).flatMap((e) => (e.data as { nodeIds: string[] }).nodeIds)).toEqual(ids(12_001));
    const blockedEvent = d[3]!.data as EventData<'rollout.blocked'>;
    expect(blockedEvent).toMatchObject({ vetoCount: 12_001, vetoingNodes: 12_001 });
    expect(blockedEvent.vetoes.length).toBeLessThanOrEqual(1000);
    expect(blockedEvent.vetoes[0]).toMatchObject({ nodeId: ids(1)[0], reason: 'NO_ANSWER' });
    const state = fold(d, g.state);
    expect(state.status === 'blocked' && { unreachable: state.counts.unreachable, vetoCount: state.vetoCount, vetoingNodes: state.vetoingNodes }).toEqual({ unreachable: 12_001, vetoCount: 12_001, vetoingNodes: 12_001 });
    // Long veto messages: the list stops at the size budget, the counts do not.
    const wordy = given(createCommand([assignment(ids(600))]), ...ids(600).map((n) => v(vote(n, 'veto', { verdicts: [{ processId: 'p', decision: 'veto', reason: 'CUSTOM', message: 'x'.repeat(3000) }] }))));
    const last = wordy.events.at(-1)!;
    expect(last.type).toBe('rollout.blocked');
    bounded([last]);
    expect((last.data as EventData<'rollout.blocked'>).vetoes.length).toBeLessThan(600);
    expect(last.data).toMatchObject({ vetoCount: 600, vetoingNodes: 600 });
  });

  it('leaves 12,001 tolerated vetoing nodes out in parts (quorum) and regresses 12,002 nodes in parts', () => {
    const g = given(createCommand([assignment(ids(12_001), [selected('app')], 'web'), assignment(['n-small'], [selected('tool')])], { vote: { mode: 'quorum', toleratedVetoes: 20_000 } }), v(vote('n-small')));
    const d = g.when({ type: 'VoteTimeout', now: at(30_000), attempt: 0 }) as RolloutEvent[];
    bounded(d);
    expect(types(d).slice(0, 4)).toEqual(['rollout.node-unreachable', 'rollout.node-unreachable', 'rollout.node-unreachable', 'rollout.nodes-excluded']);
    const excluded = d.filter((e) => e.type === 'rollout.nodes-excluded').flatMap((e) => (e.data as { nodeIds: string[] }).nodeIds);
    expect(excluded).toEqual(ids(12_001));
    expect(d.find((e) => e.type === 'rollout.accepted')!.data).toMatchObject({ nodes: 1, excluded: 12_001 });
    const state = fold(d, g.state);
    expect(state.status !== 'initial' && state.counts.excluded).toBe(12_001);

    // Regress: every node of a big completed rollout, named in parts.
    const all = [...ids(12_001), 'n-small'];
    const done = given(big(), ...all.map((n) => v(vote(n))), ...all.map((n) => p(progress(n, 'completed', { inventory: inventory() }))));
    const r = done.when({ type: 'Regress', now: at(200), by: 'bob', to: { kind: 'previous' }, reason: 'bad' }) as RolloutEvent[];
    bounded(r);
    expect(types(r)).toEqual(['rollout.regress-requested', 'rollout.regress-requested', 'rollout.regress-requested']);
    expect(r.flatMap((e) => (e.data as { nodes: string[] }).nodes)).toEqual([...all].sort());
    const after = fold(r, done.state);
    expect(after.status !== 'initial' && after.counts.regressing).toBe(12_002);
  });
});

import { describe, expect, it } from '@jest/globals';
import { EVENT_SCHEMAS, type RolloutWindows } from '@changeover/contracts';
import { decide, type RolloutCommand } from '../rollout/rollout.decider.js';
import { fold, initialState } from '../rollout/rollout.state.js';
import type { RolloutEvent } from '../rollout/rollout.events.js';
import { showSummary } from '../rollout/rollout.view.js';
import { react, resume, whyIgnored } from '../workflow/rollout.workflow.js';
import { assignment, at, createCommand, progress, selected, vote } from '../testing/fixtures.js';
import { active, given, types } from '../testing/decider.js';

const v = (n: string, ms = 10): RolloutCommand => ({ type: 'RecordVote', now: at(ms), report: vote(n) });
const p = (report: ReturnType<typeof progress>, ms: number): RolloutCommand => ({ type: 'RecordProgress', now: at(ms), report });
const HOUR = 3_600_000;

describe('rollout decider: start at a time', () => {
  // T0 = 2030-01-01T00:00Z.
  const scheduled = createCommand([assignment(['n1', 'n2'])], {}, { startAt: at(HOUR).toISOString() });

  it('a start time still to come: created only, scheduled, with its start time in show', () => {
    const d = decide(scheduled, initialState());
    expect(types(d)).toEqual(['rollout.created']);
    expect(EVENT_SCHEMAS['rollout.created'].safeParse((d as RolloutEvent[])[0]!.data).success).toBe(true);
    const s = active(fold(d as RolloutEvent[]));
    expect(s.status).toBe('scheduled');
    const summary = showSummary(s, 1);
    expect(summary).toMatchObject({ status: 'scheduled', startAt: at(HOUR).toISOString(), stuck: { reason: `scheduled: starts at ${at(HOUR).toISOString()}` } });
  });

  it('the start timer proposes at the start time, not before; votes before it are not counted', () => {
    const g = given(scheduled);
    expect(g.when({ type: 'Start', now: at(HOUR - 1) })).toEqual([]);
    expect(g.when(v('n1'))).toEqual([]);
    const started = g.when({ type: 'Start', now: at(HOUR) });
    expect(types(started)).toEqual(['rollout.proposed']);
    const voting = g.then({ type: 'Start', now: at(HOUR) });
    expect(voting.state.status).toBe('voting');
    // Proposed once: a second timer firing changes nothing.
    expect(voting.when({ type: 'Start', now: at(HOUR + 5) })).toEqual([]);
  });

  it('arms the start timer when created and again when loaded after a restart', () => {
    const d = decide(scheduled, initialState()) as RolloutEvent[];
    const s = fold(d);
    expect(react(s, d[0]!)).toContainEqual({ kind: 'schedule', timer: { name: 'start' }, at: at(HOUR).toISOString() });
    expect(resume(s)).toEqual([{ kind: 'schedule', timer: { name: 'start' }, at: at(HOUR).toISOString() }]);
  });

  it('a scheduled rollout can be cancelled; no node hears of it', () => {
    const g = given(scheduled);
    const d = g.when({ type: 'Cancel', now: at(10), by: 'alice', reason: 'not tonight' }) as RolloutEvent[];
    expect(types(d)).toEqual(['rollout.cancelled']);
    const s = fold(d, g.state);
    expect(react(s, d[0]!).filter((a) => a.kind === 'abort')).toEqual([]);
    expect(g.then({ type: 'Cancel', now: at(10), by: 'alice', reason: 'x' }).when({ type: 'Start', now: at(HOUR) })).toEqual([]);
  });

  it('a start time already past proposes at once', () => {
    const d = decide(createCommand([assignment(['n1'])], {}, { startAt: at(-HOUR).toISOString() }), initialState());
    expect(types(d)).toEqual(['rollout.created', 'rollout.proposed']);
  });
});

describe('rollout decider: maintenance windows', () => {
  // Tuesday 2030-01-01 00:00 UTC is 01:00 in Berlin: the web window opens at 01:00 UTC and closes at 03:00 UTC.
  const windows: RolloutWindows = [{ classId: 'web', windows: [{ days: ['tue'], start: '02:00', end: '04:00', timeZone: 'Europe/Berlin' }] }];
  const web = assignment(['w1', 'w2', 'w3'], [selected('app')], 'web');
  const create = (extra: Record<string, unknown> = {}) => createCommand([web], { waves: { canary: 1, size: 1 }, ...extra }, { windows });
  const votes = ['w1', 'w2', 'w3'].map((n) => v(n));

  it('records only the targeted classes\' windows in the created event', () => {
    const d = decide(createCommand([web], {}, { windows: [...windows, { classId: 'db', windows: windows[0]!.windows }] }), initialState()) as RolloutEvent[];
    expect(d[0]!.data).toMatchObject({ windows });
  });

  it('outside the window the vote concludes but no wave starts: the rollout waits until the window opens', () => {
    const d = given(create()).when(votes[0]!);
    const g = given(create(), ...votes);
    const s = active(g.state);
    expect(s.status).toBe('applying');
    expect(s.counts).toMatchObject({ accepted: 3, committing: 0 });
    expect(s.waitingForWindow).toEqual({ until: at(HOUR).toISOString(), classes: ['web'] });
    expect(types(d)).toEqual(['rollout.votes-recorded']);
    expect(showSummary(s, 5)).toMatchObject({ waitingForWindow: { until: at(HOUR).toISOString(), classes: ['web'] }, stuck: { reason: `outside the maintenance window of class web: waits until ${at(HOUR).toISOString()}` } });
    // The wait's timer, armed when it began and again on load.
    expect(resume(s)).toContainEqual({ kind: 'schedule', timer: { name: 'window', until: at(HOUR).toISOString() }, at: at(HOUR).toISOString() });
  });

  it('the window timer starts the first wave once the window is open; early, it does nothing', () => {
    const g = given(create(), ...votes);
    expect(g.when({ type: 'WindowOpen', now: at(HOUR - 60_000) })).toEqual([]);
    const d = g.when({ type: 'WindowOpen', now: at(HOUR) });
    expect(types(d)).toEqual(['rollout.wave-started']);
    expect((d as RolloutEvent[])[0]!.data).toMatchObject({ wave: 0, nodes: ['w1'] });
    expect(active(g.then({ type: 'WindowOpen', now: at(HOUR) }).state).waitingForWindow).toBeNull();
  });

  it('inside the window waves follow each other; once it closes the wave in progress finishes and the next waits a week', () => {
    const open = given(create(), ...votes, { type: 'WindowOpen', now: at(HOUR) });
    const second = open.when(p(progress('w1', 'completed'), HOUR + 60_000));
    expect(types(second)).toEqual(['rollout.nodes-completed', 'rollout.wave-started']);
    const inProgress = open.then(p(progress('w1', 'completed'), HOUR + 60_000));
    // w2 changes over until after 03:00 UTC (04:00 Berlin): its completion is recorded, no third wave.
    const late = inProgress.when(p(progress('w2', 'completed'), 3 * HOUR + 60_000));
    expect(types(late)).toEqual(['rollout.nodes-completed', 'rollout.window-wait']);
    expect((late as RolloutEvent[])[1]!.data).toMatchObject({ until: at(HOUR + 7 * 24 * HOUR).toISOString(), classes: ['web'] });
  });

  it('a resume or a force outside the window waits for it too, and one wait is not recorded twice', () => {
    const paused = given(create({ errorThreshold: 0 }), ...votes, { type: 'WindowOpen', now: at(HOUR) }, p(progress('w1', 'failed'), HOUR + 1000));
    expect(paused.state.status).toBe('paused');
    const resumed = paused.when({ type: 'Resume', now: at(4 * HOUR), by: 'alice' });
    expect(types(resumed)).toEqual(['rollout.resumed', 'rollout.window-wait']);
    const waiting = paused.then({ type: 'Resume', now: at(4 * HOUR), by: 'alice' });
    expect(waiting.when({ type: 'WindowOpen', now: at(5 * HOUR) })).toEqual([]);
  });

  it('a deferred node answering outside the window is not committed then; inside it, it gets its wave', () => {
    const g = given(create({ unreachable: 'defer', waves: { canary: 0, size: '100%' } }), v('w1'), v('w2'), { type: 'VoteTimeout', now: at(30_000), attempt: 0 }, { type: 'WindowOpen', now: at(HOUR) });
    expect(active(g.state).counts).toMatchObject({ deferred: 1, committing: 2 });
    const outside: RolloutCommand = { type: 'RecordVote', now: at(4 * HOUR), report: vote('w3') };
    expect(g.when(outside)).toEqual([]);
    expect(whyIgnored(outside, g.state)).toBe('outside-window');
    const inside = g.when({ type: 'RecordVote', now: at(HOUR + 10 * 60_000), report: vote('w3') });
    expect(types(inside)).toEqual(['rollout.votes-recorded', 'rollout.wave-started']);
  });

  it('a selection without a class (nodes named one by one) is not held by any window', () => {
    const g = given(createCommand([assignment(['x1'])], {}, { windows }), v('x1'));
    expect(active(g.state).counts.committing).toBe(1);
  });
});

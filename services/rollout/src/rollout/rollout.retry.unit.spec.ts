import { describe, expect, it } from '@jest/globals';
import { ChangeoverError, EVENT_SCHEMAS } from '@changeover/contracts';
import type { RolloutCommand } from './rollout.decider.js';
import { fold } from './rollout.state.js';
import type { RolloutEvent } from './rollout.events.js';
import { showSummary } from './rollout.view.js';
import { react, resume } from '../workflow/rollout.workflow.js';
import { assignment, at, createCommand, progress, vote } from '../testing/fixtures.js';
import { active, given, types } from '../testing/decider.js';

const v = (n: string): RolloutCommand => ({ type: 'RecordVote', now: at(10), report: vote(n) });
const p = (report: ReturnType<typeof progress>, ms = 20): RolloutCommand => ({ type: 'RecordProgress', now: at(ms), report });
const nodes = ['n1', 'n2', 'n3', 'n4'];
// Canary n1, then waves of 2; the default error threshold (0, pause) pauses on the first failure.
const canaryFailed = () => [createCommand([assignment(nodes)], { waves: { canary: 1, size: '50%' }, changeoverTimeoutMs: 1000 }), ...nodes.map(v), p(progress('n1', 'failed', { error: { code: 'HEALTH_CHECK', message: 'unhealthy' } }))];
const retryN1: RolloutCommand = { type: 'Retry', now: at(100), by: 'alice', reason: 'disk freed', nodeIds: ['n1'] };

describe('rollout decider: retry of failed and timed-out nodes', () => {
  it('retries a failed node with a new attempt, who and why, in a valid event', () => {
    const g = given(...canaryFailed());
    expect(g.state.status).toBe('paused');
    const d = g.when(retryN1);
    expect(types(d)).toEqual(['rollout.nodes-retried']);
    const e = (d as RolloutEvent[])[0]!;
    expect(e.data).toMatchObject({ by: 'alice', reason: 'disk freed', attempt: 1, nodeIds: ['n1'] });
    expect(EVENT_SCHEMAS['rollout.nodes-retried'].safeParse(e.data).success).toBe(true);
  });

  it('the retried node commits again: its wave no longer counts it failed, show lists the retry', () => {
    const s = active(given(...canaryFailed(), retryN1).state);
    expect(s.nodes.get('n1')).toMatchObject({ phase: 'committing', attempt: 1, wave: 0 });
    expect(s.counts).toMatchObject({ failed: 0, committing: 1 });
    expect(s.waves[0]).toMatchObject({ failed: 0, completed: 0 });
    const summary = showSummary(s, 9);
    expect(summary.retries).toEqual([{ attempt: 1, by: 'alice', reason: 'disk freed', nodes: 1, at: at(100).toISOString() }]);
    expect(summary.failures).toBeUndefined();
    // Paused by the threshold: it stays paused until resumed.
    expect(s.status).toBe('paused');
  });

  it('a late report of the old attempt is ignored; the retry attempt completes; resume starts the next wave', () => {
    const g = given(...canaryFailed(), retryN1);
    expect(g.when(p(progress('n1', 'completed'), 200))).toEqual([]);
    expect(g.when(p(progress('n1', 'failed'), 200))).toEqual([]);
    const done = g.then(p(progress('n1', 'completed', { attempt: 1 }), 200));
    expect(active(done.state).counts).toMatchObject({ completed: 1, failed: 0 });
    const resumed = done.when({ type: 'Resume', now: at(300), by: 'alice' });
    expect(types(resumed)).toEqual(['rollout.resumed', 'rollout.wave-started']);
    expect((resumed as RolloutEvent[])[1]!.data).toMatchObject({ wave: 1, nodes: ['n2', 'n3'] });
  });

  it('a retried node that fails again crosses the threshold again (applying after resume)', () => {
    const g = given(...canaryFailed(), { type: 'Resume', now: at(50), by: 'alice' });
    expect(g.state.status).toBe('applying');
    const failedAgain = g.then(retryN1).when(p(progress('n1', 'failed', { attempt: 1 }), 200));
    expect(types(failedAgain)).toEqual(['rollout.node-failed', 'rollout.paused']);
  });

  it('a timed-out node (TIMEOUT) can be retried; the retry has its own deadline, the wave timer leaves it alone', () => {
    const start = [createCommand([assignment(nodes)], { waves: { canary: 1, size: '50%' }, changeoverTimeoutMs: 1000 }), ...nodes.map(v)];
    const timedOut = given(...start, { type: 'WaveTimeout', now: at(2000), wave: 0 });
    expect(active(timedOut.state).failures).toEqual([{ nodeId: 'n1', code: 'TIMEOUT', message: 'no completion within 1000 ms' }]);
    const retried = timedOut.then({ ...retryN1, now: at(3000) });
    // The wave's deadline passed long ago: it must not fail the node its retry gave a new one.
    expect(retried.when({ type: 'WaveTimeout', now: at(3500), wave: 0 })).toEqual([]);
    expect(retried.when({ type: 'RetryTimeout', now: at(3500), attempt: 1 })).toEqual([]);
    const late = retried.when({ type: 'RetryTimeout', now: at(4000), attempt: 1 });
    expect(types(late)).toEqual(['rollout.node-failed']);
    expect((late as RolloutEvent[])[0]!.data).toMatchObject({ nodeId: 'n1', code: 'TIMEOUT' });
    expect(types(retried.when(p(progress('n1', 'completed', { attempt: 1 }), 3600)))).toEqual(['rollout.nodes-completed']);
  });

  it('refuses a node that is not failed (409 INVALID_STATE naming its phase) and an unknown node (404 NOT_FOUND)', () => {
    const g = given(...canaryFailed());
    const notFailed = g.when({ ...retryN1, nodeIds: ['n2'] });
    expect(notFailed).toBeInstanceOf(ChangeoverError);
    expect(notFailed).toMatchObject({ code: 'INVALID_STATE', details: { nodeId: 'n2', phase: 'accepted' } });
    expect(g.when({ ...retryN1, nodeIds: ['n1', 'ghost'] })).toMatchObject({ code: 'NOT_FOUND', details: { nodeId: 'ghost' } });
    // Nothing half-done: the refused retry named n1 too, and n1 is still failed.
    expect(active(g.state).nodes.get('n1')?.phase).toBe('failed');
  });

  it('refuses a bulk retry with nothing failed, and a rollout not applying, paused or verifying', () => {
    const applying = given(createCommand([assignment(nodes)], { waves: { canary: 1, size: '50%' } }), ...nodes.map(v));
    expect(applying.when({ type: 'Retry', now: at(50), by: 'alice', reason: 'x' })).toMatchObject({ code: 'INVALID_STATE', details: { failed: 0 } });
    const voting = given(createCommand([assignment(nodes)]));
    expect(voting.when({ type: 'Retry', now: at(50), by: 'alice', reason: 'x' })).toMatchObject({ code: 'INVALID_STATE', details: { status: 'voting' } });
    const cancelled = given(...canaryFailed(), { type: 'Cancel', now: at(60), by: 'alice', reason: 'no' });
    expect(cancelled.when(retryN1)).toMatchObject({ code: 'INVALID_STATE', details: { status: 'cancelled' } });
  });

  it('a bulk retry takes every failed node; a verifying rollout applies again and completes once they finish', () => {
    const g = given(
      createCommand([assignment(['n1', 'n2', 'n3'])], { errorThreshold: 1 }),
      ...['n1', 'n2', 'n3'].map(v),
      p(progress('n1', 'failed')),
      p(progress('n2', 'failed')),
      p(progress('n3', 'completed')),
    );
    expect(g.state.status).toBe('verifying');
    const retried = g.then({ type: 'Retry', now: at(100), by: 'bob', reason: 'network back' });
    const s = active(retried.state);
    expect(s.status).toBe('applying');
    expect([...s.nodes].filter(([, n]) => n.phase === 'committing').map(([id]) => id)).toEqual(['n1', 'n2']);
    // A second retry gets a higher attempt than the first.
    const again = retried.then(p(progress('n1', 'failed', { attempt: 1 }), 150)).when({ type: 'Retry', now: at(160), by: 'bob', reason: 'once more', nodeIds: ['n1'] });
    expect((again as RolloutEvent[])[0]!.data).toMatchObject({ attempt: 2 });
    const done = retried.then(p(progress('n1', 'completed', { attempt: 1 }), 150)).then(p(progress('n2', 'completed', { attempt: 1 }), 160));
    expect(done.state.status).toBe('verifying');
    expect(types(done.when({ type: 'Verify', now: at(170) }))).toEqual(['rollout.verified', 'rollout.completed']);
  });

  it('the workflow commits the retried nodes with the retry attempt and arms its deadline; a restart re-sends and re-arms the same', () => {
    const g = given(...canaryFailed());
    const d = g.when(retryN1) as RolloutEvent[];
    const after = fold(d, g.state);
    expect(react(after, d[0]!)).toEqual([
      { kind: 'commit', selection: 0, to: { kind: 'nodes', nodeIds: ['n1'] }, attempt: 1, forced: false },
      { kind: 'schedule', timer: { name: 'retry', attempt: 1 }, at: at(1100).toISOString() },
    ]);
    const loaded = resume(after);
    expect(loaded).toContainEqual({ kind: 'commit', selection: 0, to: { kind: 'nodes', nodeIds: ['n1'] }, attempt: 1, forced: false });
    expect(loaded).toContainEqual({ kind: 'schedule', timer: { name: 'retry', attempt: 1 }, at: at(1100).toISOString() });
    expect(loaded.filter((a) => a.kind === 'schedule' && a.timer.name === 'wave')).toEqual([]);
  });
});

import { describe, expect, it, jest } from '@jest/globals';
import { isChangeoverError } from '@changeover/contracts';
import { waitFor } from '@changeover/test-kit';
import { createLogger, registry } from '@changeover/telemetry';
import { realTimers, type EventLog } from './rollout.runner.js';
import { assignment, createCommand, progress, vote } from '../testing/fixtures.js';
import { memoryLog, memoryRunner } from '../testing/memory-log.js';

/** The log's reads wait until `open()`: a slow Postgres, so that other work lands while a rollout loads. */
function gated(log: EventLog): EventLog & { open(): void; reads: number } {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const g = {
    reads: 0,
    open: () => open(),
    append: log.append.bind(log),
    async readStream(id: string, options?: { after?: number; limit?: number }) {
      g.reads++;
      await gate;
      return log.readStream(id, options);
    },
  };
  return g;
}

const created = async () => {
  const store = memoryLog();
  await memoryRunner(store, []).apply('r1', { ...createCommand([assignment(['n1', 'n2'])]), now: new Date() }, 'alice');
  return store;
};

describe('adopting a rollout', () => {
  it('holds a catch-up that arrives while the rollout loads, so the proposal is sent once', async () => {
    const store = await created();
    const slow = gated(store);
    const sent: string[] = [];
    const runner = memoryRunner(slow, sent);
    const adopting = runner.adopt('r1');
    // The nudge of the creating append reaches the new owner while its load is still reading.
    const caught = runner.catchUp('r1');
    await Promise.resolve();
    expect(slow.reads).toBe(1);
    slow.open();
    await Promise.all([adopting, caught]);
    expect(sent).toEqual(['propose']);
    expect(runner.stateOf('r1')).toMatchObject({ version: store.events.length, state: { status: 'voting' } });
  });

  it('decides a vote that arrives while the rollout loads against the loaded state', async () => {
    const store = await created();
    const slow = gated(store);
    const runner = memoryRunner(slow, []);
    const adopting = runner.adopt('r1');
    const refusals: unknown[] = [];
    expect(runner.post('r1', { type: 'RecordVote', now: new Date(), report: vote('n1') }, 'node:n1', (e) => refusals.push(e))).toBe(true);
    slow.open();
    await adopting;
    await runner.submit('r1', { type: 'RecordVote', now: new Date(), report: vote('n2') });
    expect(refusals).toEqual([]);
    const types = store.events.map((e) => e.type);
    expect(types.slice(0, 2)).toEqual(['rollout.created', 'rollout.proposed']);
    expect(types).toContain('rollout.accepted');
    expect(runner.stateOf('r1')!.state).toMatchObject({ counts: { voting: 0 } });
  });

  it('lets go of a rollout whose load failed, so the next lease round adopts it again', async () => {
    const store = await created();
    let fail = true;
    const flaky: EventLog = { append: store.append.bind(store), readStream: (id, o) => (fail ? Promise.reject(new Error('connection terminated')) : store.readStream(id, o)) };
    const sent: string[] = [];
    const runner = memoryRunner(flaky, sent);
    await expect(runner.adopt('r1')).rejects.toThrow('connection terminated');
    expect(runner.isOwned('r1')).toBe(false);
    fail = false;
    await runner.adopt('r1');
    expect(runner.isOwned('r1')).toBe(true);
    expect(sent).toEqual(['propose']);
  });

  it('decides a posted report again after a Postgres restart failed its append, rather than losing it', async () => {
    const store = await created();
    // Postgres away: the append of the vote fails, and so do the first reads that rebuild the state.
    let away = false;
    let failedReads = 0;
    const restarting: EventLog = {
      append: (id, v, batch) => (away ? Promise.reject(new Error('Connection terminated unexpectedly')) : store.append(id, v, batch)),
      readStream: (id, o) => {
        if (away && ++failedReads >= 2) away = false;
        return away || failedReads === 1 ? Promise.reject(new Error('connect ECONNREFUSED')) : store.readStream(id, o);
      },
    };
    const runner = memoryRunner(restarting, []);
    await runner.adopt('r1');
    away = true;
    const refusals: unknown[] = [];
    runner.post('r1', { type: 'RecordVote', now: new Date(), report: vote('n1') }, 'node:n1', (e) => refusals.push(e));
    runner.post('r1', { type: 'RecordVote', now: new Date(), report: vote('n2') }, 'node:n2', (e) => refusals.push(e));
    await waitFor('both votes stored', () => store.events.some((e) => e.type === 'rollout.accepted'), { timeoutMs: 10_000 });
    expect(refusals).toEqual([]);
    expect(failedReads).toBeGreaterThanOrEqual(2);
    // The state the runner holds is the stored one: nothing decided while the append failed survives in memory alone.
    expect(runner.stateOf('r1')).toMatchObject({ version: store.events.length, state: { counts: { voting: 0 } } });
  });

  it('tells a caller whose command waits in the queue when the rollout is dropped', async () => {
    const store = await created();
    const slow = gated(store);
    const runner = memoryRunner(slow, []);
    const adopting = runner.adopt('r1');
    const waiting = runner.submit('r1', { type: 'Cancel', now: new Date(), by: 'alice', reason: 'wrong version' });
    runner.drop('r1');
    const err = await waiting.catch((e: unknown) => e);
    expect(isChangeoverError(err, 'UNAVAILABLE')).toBe(true);
    slow.open();
    await adopting;
    expect(runner.isOwned('r1')).toBe(false);
    expect(store.events.map((e) => e.type)).toEqual(['rollout.created', 'rollout.proposed']);
  });
});

describe('waiting for a change (long poll)', () => {
  it('resolves when an append passes the version seen, at once when it already has or the rollout is not owned here', async () => {
    const store = await created();
    const runner = memoryRunner(store, []);
    await runner.adopt('r1');
    const seen = runner.stateOf('r1')!.version;
    let woken = false;
    const waiting = runner.changed('r1', seen, 60_000).then((r) => ((woken = true), r));
    await Promise.resolve();
    expect(woken).toBe(false);
    await runner.submit('r1', { type: 'RecordVote', now: new Date(), report: vote('n1') });
    // The answer is the state the change left.
    const after = await waiting;
    expect(after?.version).toBeGreaterThan(seen);
    expect(after?.version).toBe(runner.stateOf('r1')!.version);
    expect((await runner.changed('r1', 0, 60_000))?.version).toBe(after?.version);
    expect(await runner.changed('elsewhere', 0, 60_000)).toBeUndefined();
  });

  it('releases its waiters when the rollout is dropped, and after waitMs when nothing changes', async () => {
    const store = await created();
    const runner = memoryRunner(store, []);
    await runner.adopt('r1');
    const seen = runner.stateOf('r1')!.version;
    const waiting = runner.changed('r1', seen, 60_000);
    runner.drop('r1');
    expect(await waiting).toBeUndefined();
    await runner.adopt('r1');
    expect(await runner.changed('r1', seen, 1)).toBeUndefined();
    expect(runner.stateOf('r1')!.version).toBe(seen);
  });
});

describe('the Verify after the last completion', () => {
  it('logs and counts a Verify whose append fails, and retries it until the rollout is decided', async () => {
    const store = memoryLog();
    await memoryRunner(store, []).apply('r1', { ...createCommand([assignment(['n1'])]), now: new Date() }, 'alice');
    let failures = 1;
    const flaky: EventLog = {
      readStream: store.readStream.bind(store),
      append: (id, expected, events) => (failures > 0 && events.some((e) => e.type === 'rollout.verified') ? (failures--, Promise.reject(new Error('connection terminated'))) : store.append(id, expected, events)),
    };
    const lines: Record<string, unknown>[] = [];
    const log = createLogger('rollout-test', { level: 'warn', destination: { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) } });
    const counted = async () => (await registry.getSingleMetric('changeover_rollout_verify_failures_total')!.get()).values.find((v) => v.labels['code'] === 'INTERNAL')?.value ?? 0;
    const before = await counted();
    const runner = memoryRunner(flaky, [], log);
    await runner.adopt('r1');
    await runner.submit('r1', { type: 'RecordVote', now: new Date(), report: vote('n1') });
    // The completion makes the rollout verifying: its Verify is the step that fails once.
    await runner.submit('r1', { type: 'RecordProgress', now: new Date(), report: progress('n1', 'completed') });
    await waitFor('the retried Verify decides the rollout', () => store.events.some((e) => e.type === 'rollout.verified'), { timeoutMs: 10_000 });
    expect(failures).toBe(0);
    expect(await counted()).toBe(before + 1);
    expect(lines).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'verify failed', rolloutId: 'r1', code: 'INTERNAL', tries: 0, retrying: true }));
    runner.drop('r1');
  });
});

describe('after a reconnect', () => {
  it('sends again only what the nodes still owe an answer to: the proposal to a node that has not voted, the commit to a node not finished, nothing once done', async () => {
    const store = await created();
    const sent: string[] = [];
    const runner = memoryRunner(store, sent);
    const resent = async () => (await registry.getSingleMetric('changeover_rollout_commands_resent_total')!.get()).values.find((v) => v.labels['reason'] === 'reconnect')?.value ?? 0;
    const before = await resent();
    const phases = () => {
      const { state } = runner.stateOf('r1')!;
      return state.status === 'initial' ? {} : Object.fromEntries([...state.nodes].map(([id, n]) => [id, n.phase]));
    };
    await runner.adopt('r1');
    await runner.submit('r1', { type: 'RecordVote', now: new Date(), report: vote('n1') });
    sent.length = 0;
    // n2's vote was lost while this instance was away from NATS: it is asked again (one proposal, to n2 alone).
    await runner.resendOwed('reconnect');
    expect(sent).toEqual(['propose']);
    await runner.submit('r1', { type: 'RecordVote', now: new Date(), report: vote('n2') });
    await runner.submit('r1', { type: 'RecordProgress', now: new Date(), report: progress('n1', 'completed') });
    expect(phases()).toEqual({ n1: 'completed', n2: 'committing' });
    sent.length = 0;
    await runner.resendOwed('reconnect');
    expect(sent).toEqual(['commit']);
    await runner.submit('r1', { type: 'RecordProgress', now: new Date(), report: progress('n2', 'completed') });
    await waitFor('the rollout completed', () => !runner.isOwned('r1') || runner.stateOf('r1')!.state.status === 'completed');
    sent.length = 0;
    await runner.resendOwed('reconnect');
    expect(sent).toEqual([]);
    expect(await resent()).toBe(before + 2);
    runner.drop('r1');
  });
});

describe('the process timers', () => {
  it('run a callback only once Date.now() has reached its time, when the timeout fires before the wall clock gets there', async () => {
    const real = Date.now.bind(Date);
    let lag = 0;
    const spy = jest.spyOn(Date, 'now').mockImplementation(() => real() - lag);
    try {
      const at = Date.now() + 20;
      let ranAt = 0;
      realTimers.at(at, () => (ranAt = Date.now()));
      // The wall clock falls behind the timer's clock: when the 20 ms timeout fires, it is 20 ms short of `at`.
      lag = 40;
      await new Promise((r) => setTimeout(r, 35));
      expect(ranAt).toBe(0);
      lag = 0;
      await waitFor('the callback ran', () => ranAt > 0, { timeoutMs: 2000 });
      expect(ranAt).toBeGreaterThanOrEqual(at);
    } finally {
      spy.mockRestore();
    }
  });
});

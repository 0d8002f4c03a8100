import { describe, expect, it } from '@jest/globals';
import { RolloutPolicy, type ClassWindows, type RolloutSummary } from '@changeover/contracts';
import { runCli } from './program.js';
import { windowSpec } from './class-windows.js';

const summary = (over: Partial<RolloutSummary> = {}): RolloutSummary => ({
  rolloutId: 'r1',
  status: 'paused',
  description: 'app 2',
  attempt: 0,
  version: 7,
  createdBy: 'alice',
  createdAt: '2030-01-01T00:00:00.000Z',
  updatedAt: '2030-01-01T00:00:01.000Z',
  policy: RolloutPolicy.parse({}),
  nodes: 2,
  phases: { committing: 1, accepted: 1 },
  waves: [],
  vetoes: [],
  forced: null,
  discrepancies: [],
  stuck: null,
  ...over,
});

/** A fake of the REST API: records requests, answers from a table. */
function harness(answers: Record<string, { status: number; body: unknown }>) {
  const calls: { method: string; url: string; body: unknown }[] = [];
  const out: string[] = [];
  const err: string[] = [];
  const fake: typeof fetch = async (input, init) => {
    const url = String(input);
    const method = init?.method ?? 'GET';
    calls.push({ method, url, body: init?.body ? JSON.parse(String(init.body)) : undefined });
    const a = answers[`${method} ${new URL(url).pathname}`];
    return a ? new Response(JSON.stringify(a.body), { status: a.status }) : new Response(JSON.stringify({ code: 'NOT_FOUND', message: 'no route' }), { status: 404 });
  };
  const run = (...argv: string[]) => runCli(argv, { out: (t) => out.push(t), err: (t) => err.push(t), env: { CHANGEOVER_ROLLOUT_URL: 'http://rollout:1', CHANGEOVER_TOKEN: 'tok' }, isTty: false, sleep: async () => undefined, fetch: fake });
  return { calls, out, err, run };
}

const windows = (over: Partial<ClassWindows> = {}): ClassWindows => ({ classId: 'web', windows: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '02:00', end: '04:00', timeZone: 'Europe/Berlin' }], updatedBy: 'alice', updatedAt: '2030-01-01T00:00:00.000Z', openNow: false, nextOpening: '2030-01-01T01:00:00.000Z', ...over });

describe('changeover CLI: retry, start times, class windows', () => {
  it('rollout retry sends the reason and the nodes; --json prints the answer; a refusal is exit code 2 with the code', async () => {
    const retried = summary({ retries: [{ attempt: 1, by: 'alice', reason: 'disk freed', nodes: 1, at: '2030-01-01T00:00:02.000Z' }] });
    const h = harness({ 'POST /rollouts/r1/retry': { status: 200, body: retried } });
    expect(await h.run('rollout', 'retry', 'r1', '-r', 'disk freed', '-n', 'n-1', '--json')).toBe(0);
    expect(h.calls[0]!.body).toEqual({ reason: 'disk freed', nodeIds: ['n-1'] });
    expect(JSON.parse(h.out.join('\n')).retries).toEqual(retried.retries);
    const all = harness({ 'POST /rollouts/r1/retry': { status: 200, body: retried } });
    expect(await all.run('rollout', 'retry', 'r1', '-r', 'network back')).toBe(0);
    expect(all.calls[0]!.body).toEqual({ reason: 'network back' });
    const refused = harness({ 'POST /rollouts/r1/retry': { status: 409, body: { code: 'INVALID_STATE', message: 'node n-2 is completed: only a failed or timed-out node can be retried' } } });
    expect(await refused.run('rollout', 'retry', 'r1', '-r', 'x', '-n', 'n-2')).toBe(2);
    expect(refused.err.join('\n')).toContain('INVALID_STATE');
    // The reason is required, before anything is sent.
    const noReason = harness({});
    expect(await noReason.run('rollout', 'retry', 'r1')).not.toBe(0);
    expect(noReason.calls).toEqual([]);
  });

  it('rollout create --start-at schedules it; show names the start and the retries', async () => {
    const scheduled = summary({ status: 'scheduled', startAt: '2030-01-02T02:00:00.000Z', phases: { voting: 2 } });
    const h = harness({ 'POST /rollouts': { status: 201, body: scheduled }, 'GET /rollouts/r1': { status: 200, body: summary({ retries: [{ attempt: 1, by: 'alice', reason: 'disk freed', nodes: 1, at: '2030-01-01T00:00:02.000Z' }], waitingForWindow: { until: '2030-01-02T01:00:00.000Z', classes: ['web'] } }) } });
    expect(await h.run('rollout', 'create', '-p', 'app@2.0.0', '-c', 'web', '--start-at', '2030-01-02T03:00:00+01:00')).toBe(0);
    expect(h.calls[0]!.body).toMatchObject({ startAt: '2030-01-02T03:00:00+01:00' });
    expect(h.out.join('\n')).toContain('scheduled rollout r1 to start at 2030-01-02T02:00:00.000Z');
    expect(await h.run('rollout', 'show', 'r1')).toBe(0);
    const text = h.out.join('\n');
    expect(text).toContain('retried 1 node(s) (attempt 1) by alice');
    expect(text).toContain('waiting for class web until 2030-01-02T01:00:00.000Z');
    const bad = harness({});
    expect(await bad.run('rollout', 'create', '-p', 'app@2.0.0', '-c', 'web', '--start-at', 'tomorrow')).toBe(2);
    expect(bad.calls).toEqual([]);
  });

  it('class windows set parses "<days> <start>-<end> <zone>" into the request; show renders or prints JSON', async () => {
    const h = harness({ 'PUT /classes/web/windows': { status: 200, body: windows() }, 'GET /classes/web/windows': { status: 200, body: windows() } });
    expect(await h.run('class', 'windows', 'set', 'web', '-w', 'mon-fri 02:00-04:00 Europe/Berlin', 'sat,sun 22:00-01:00 UTC')).toBe(0);
    expect(h.calls[0]).toMatchObject({ method: 'PUT', url: 'http://rollout:1/classes/web/windows' });
    expect(h.calls[0]!.body).toEqual({ windows: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '02:00', end: '04:00', timeZone: 'Europe/Berlin' }, { days: ['sat', 'sun'], start: '22:00', end: '01:00', timeZone: 'UTC' }] });
    expect(h.out.join('\n')).toContain('closed now; next opens 2030-01-01T01:00:00.000Z');
    expect(await h.run('class', 'windows', 'show', 'web', '--json')).toBe(0);
    expect(JSON.parse(h.out.at(-1)!)).toEqual(windows());
    const clear = harness({ 'PUT /classes/web/windows': { status: 200, body: windows({ windows: [], openNow: true, nextOpening: null }) } });
    expect(await clear.run('class', 'windows', 'set', 'web', '--clear')).toBe(0);
    expect(clear.calls[0]!.body).toEqual({ windows: [] });
    expect(clear.out.join('\n')).toContain('no maintenance window');
  });

  it('refuses a malformed window or an unknown time zone before sending anything', async () => {
    expect(() => windowSpec('weekdays 02:00-04:00 UTC')).toThrow(/days/);
    expect(() => windowSpec('mon 02:00 UTC')).toThrow(/expected/);
    for (const spec of ['mon 02:00-04:00 Mars/Base', 'mon 25:00-04:00 UTC', 'fri-mon 02:00-04:00 UTC']) {
      const h = harness({});
      expect([spec, await h.run('class', 'windows', 'set', 'web', '-w', spec)]).toEqual([spec, 2]);
      expect(h.calls).toEqual([]);
      expect(h.err.join('\n')).toContain('VALIDATION_FAILED');
    }
  });
});

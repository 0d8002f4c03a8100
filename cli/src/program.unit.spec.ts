import { describe, expect, it } from '@jest/globals';
import { RolloutPolicy, type RolloutSummary } from '@changeover/contracts';
import { runCli } from './program.js';

const summary = (over: Partial<RolloutSummary> = {}): RolloutSummary => ({
  rolloutId: 'r1',
  status: 'blocked',
  description: 'app 2',
  attempt: 0,
  version: 7,
  createdBy: 'alice',
  createdAt: '2030-01-01T00:00:00.000Z',
  updatedAt: '2030-01-01T00:00:01.000Z',
  policy: RolloutPolicy.parse({}),
  nodes: 2,
  phases: { accepted: 1, vetoed: 1 },
  waves: [],
  vetoes: [{ nodeId: 'db-1', processId: 'compactor', reason: 'PROCESS_BUSY', message: 'compacting', retryAfterMs: 60_000 }],
  forced: null,
  discrepancies: [],
  stuck: { reason: 'vetoed by 1 node(s): PROCESS_BUSY', nodes: ['db-1'], processes: ['db-1/compactor'], hint: 'changeover rollout force r1 --reason "<why>"' },
  ...over,
});

/** A hand-written fake of the REST API: records requests, answers from a table. */
function harness(answers: Record<string, { status: number; body: unknown }[]>) {
  const calls: { method: string; url: string; body: unknown; auth: string | null }[] = [];
  const out: string[] = [];
  const err: string[] = [];
  const fake: typeof fetch = async (input, init) => {
    const url = String(input);
    const method = init?.method ?? 'GET';
    calls.push({ method, url, body: init?.body ? JSON.parse(String(init.body)) : undefined, auth: new Headers(init?.headers).get('authorization') });
    const key = `${method} ${new URL(url).pathname}`;
    const queue = answers[key];
    const a = queue && queue.length > 1 ? queue.shift()! : queue?.[0];
    if (!a) return new Response(JSON.stringify({ code: 'NOT_FOUND', message: `no route ${key}` }), { status: 404 });
    return new Response(JSON.stringify(a.body), { status: a.status });
  };
  const sleeps: number[] = [];
  const run = (...argv: string[]) => runCli(argv, { out: (t) => out.push(t), err: (t) => err.push(t), env: { CHANGEOVER_ROLLOUT_URL: 'http://rollout:1', CHANGEOVER_TOKEN: 'tok' }, isTty: false, sleep: async (ms) => void sleeps.push(ms), fetch: fake });
  return { calls, out, err, run, sleeps };
}

describe('changeover CLI', () => {
  it('rollout create turns flags into a create request with targets and policy', async () => {
    const h = harness({ 'POST /rollouts': [{ status: 201, body: summary({ status: 'voting' }) }] });
    expect(await h.run('rollout', 'create', '-p', 'app@2.0.0', '-n', 'n1', 'n2', '-c', 'web', '--canary', '2', '--wave-size', '25%', '--quorum', '1', '--unreachable', 'defer')).toBe(0);
    expect(h.calls[0]).toMatchObject({ method: 'POST', url: 'http://rollout:1/rollouts', auth: 'Bearer tok' });
    expect(h.calls[0]!.body).toMatchObject({
      update: { targets: [{ nodes: ['n1', 'n2'], packages: [{ name: 'app', version: '2.0.0' }] }, { classes: ['web'], packages: [{ name: 'app', version: '2.0.0' }] }] },
      policy: { vote: { mode: 'quorum', toleratedVetoes: 1 }, unreachable: 'defer', waves: { canary: 2, size: '25%' } },
    });
    expect(h.out.join('\n')).toContain('created rollout r1 for 2 node(s)');
  });

  it('rollout show answers why it is stuck: node, process, reason, retry-after and the force command', async () => {
    const h = harness({ 'GET /rollouts/r1': [{ status: 200, body: summary() }] });
    expect(await h.run('rollout', 'show', 'r1')).toBe(0);
    const text = h.out.join('\n');
    expect(text).toContain('WHY IT IS STUCK: vetoed by 1 node(s): PROCESS_BUSY');
    expect(text).toMatch(/db-1\s+compactor\s+PROCESS_BUSY\s+60 s\s+compacting/);
    expect(text).toContain('changeover rollout force r1 --reason');
  });

  it('--json prints the answer as JSON for scripts', async () => {
    const h = harness({ 'GET /rollouts/r1': [{ status: 200, body: summary() }] });
    await h.run('rollout', 'show', 'r1', '--json');
    expect(JSON.parse(h.out.join('\n'))).toMatchObject({ rolloutId: 'r1', status: 'blocked' });
  });

  it('force sends who-and-why; a refused command prints the typed error and exits 2', async () => {
    const h = harness({ 'POST /rollouts/r1/force': [{ status: 409, body: { code: 'INVALID_STATE', message: 'cannot force: the rollout is completed' } }] });
    expect(await h.run('rollout', 'force', 'r1', '--reason', 'window', '-n', 'db-1')).toBe(2);
    expect(h.calls[0]!.body).toEqual({ reason: 'window', nodes: ['db-1'] });
    expect(h.err.join('\n')).toContain('error INVALID_STATE: cannot force: the rollout is completed');
  });

  it('watch shows live progress until the rollout ends and exits 0 when completed', async () => {
    const h = harness({
      'GET /rollouts/r1': [
        { status: 200, body: summary({ status: 'applying', stuck: null, vetoes: [], phases: { committing: 2 } }) },
        { status: 200, body: summary({ status: 'applying', stuck: null, vetoes: [], phases: { committing: 1, completed: 1 } }) },
        { status: 200, body: summary({ status: 'completed', stuck: null, vetoes: [], phases: { completed: 2 } }) },
      ],
    });
    expect(await h.run('rollout', 'watch', 'r1')).toBe(0);
    expect(h.out).toHaveLength(3);
    expect(h.out[1]).toContain('[###############...............] 1/2');
    expect(h.out[2]).toContain('completed 2');
    // After the first answer each request is a long poll for the change past the version seen.
    expect(h.calls.map((c) => new URL(c.url).search)).toEqual(['', '?after=7&waitMs=10000', '?after=7&waitMs=10000']);
  });

  it('watch pauses between requests only when an answer brings no change', async () => {
    const applying = summary({ status: 'applying', stuck: null, vetoes: [], phases: { committing: 2 } });
    const h = harness({
      'GET /rollouts/r1': [
        { status: 200, body: { ...applying, version: 7 } },
        { status: 200, body: { ...applying, version: 7 } },
        { status: 200, body: { ...applying, version: 9, phases: { committing: 1, completed: 1 } } },
        { status: 200, body: summary({ status: 'completed', version: 10, stuck: null, vetoes: [], phases: { completed: 2 } }) },
      ],
    });
    expect(await h.run('rollout', 'watch', 'r1')).toBe(0);
    expect(h.calls.map((c) => new URL(c.url).search)).toEqual(['', '?after=7&waitMs=10000', '?after=7&waitMs=10000', '?after=9&waitMs=10000']);
    expect(h.sleeps).toEqual([500]);
  });

  it('prints the rollout trace id on create and show, and --json carries it', async () => {
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const h = harness({ 'POST /rollouts': [{ status: 201, body: summary({ status: 'voting', traceId }) }], 'GET /rollouts/r1': [{ status: 200, body: summary({ traceId }) }] });
    await h.run('rollout', 'create', '-p', 'app@2.0.0', '-n', 'n1');
    expect(h.out.join('\n')).toContain(`trace id ${traceId}`);
    await h.run('rollout', 'show', 'r1');
    expect(h.out.join('\n')).toMatch(new RegExp(`trace\\s+${traceId}`));
    await h.run('rollout', 'show', 'r1', '--json');
    expect(JSON.parse(h.out.at(-1)!)).toMatchObject({ traceId });
  });

  it('refuses a malformed package spec before calling anything', async () => {
    const h = harness({});
    expect(await h.run('rollout', 'create', '-p', 'app', '-n', 'n1')).toBe(2);
    expect(h.calls).toHaveLength(0);
    expect(h.err.join('')).toContain('VALIDATION_FAILED');
  });
});

describe('changeover CLI: history, audit, pause', () => {
  it('rollout list sends the filters and follows the cursor to the last page', async () => {
    const item = (id: string) => ({ rolloutId: id, status: 'completed', description: id, createdBy: 'alice', nodes: 1, phases: { completed: 1 }, createdAt: '2030-01-01T00:00:00.000Z', updatedAt: '2030-01-01T00:00:01.000Z' });
    const h = harness({ 'GET /rollouts': [{ status: 200, body: { rollouts: [item('r2')], nextCursor: 'c1' } }, { status: 200, body: { rollouts: [item('r1')], nextCursor: null } }] });
    expect(await h.run('rollout', 'list', '--status', 'completed,paused', '--package', 'app@2.0.0', '--class', 'web', '--actor', 'alice', '--created-after', '2030-01-01T00:00:00Z', '--json')).toBe(0);
    const urls = h.calls.map((c) => new URL(c.url));
    expect(urls).toHaveLength(2);
    expect(Object.fromEntries(urls[0]!.searchParams)).toEqual({ status: 'completed,paused', package: 'app', version: '2.0.0', class: 'web', actor: 'alice', createdAfter: '2030-01-01T00:00:00Z', limit: '50' });
    expect(urls[1]!.searchParams.get('cursor')).toBe('c1');
    expect(JSON.parse(h.out.join('\n')).rollouts.map((r: { rolloutId: string }) => r.rolloutId)).toEqual(['r2', 'r1']);
  });

  it('audit --json prints every entry of every page', async () => {
    const entry = (id: string, action: string) => ({ id, action, actor: 'alice', actorRole: 'operator', actorTokenId: 't1', at: '2030-01-01T00:00:00.000Z', target: { kind: 'rollout', rolloutId: 'r1' }, reason: 'why', outcome: 'accepted' });
    const h = harness({ 'GET /audit': [{ status: 200, body: { entries: [entry('9', 'pause')], nextCursor: 'c' } }, { status: 200, body: { entries: [entry('3', 'create')], nextCursor: null } }] });
    expect(await h.run('audit', '--actor', 'alice', '--action', 'pause,create', '--rollout', 'r1', '--json')).toBe(0);
    expect(Object.fromEntries(new URL(h.calls[0]!.url).searchParams)).toEqual({ actor: 'alice', action: 'pause,create', rolloutId: 'r1', limit: '100' });
    expect(JSON.parse(h.out.join('\n')).entries.map((e: { action: string }) => e.action)).toEqual(['pause', 'create']);
  });

  it('rollout pause sends the reason; a refusal is exit code 2 with the error code', async () => {
    const h = harness({ 'POST /rollouts/r1/pause': [{ status: 200, body: summary({ status: 'paused' }) }] });
    expect(await h.run('rollout', 'pause', 'r1', '-r', 'incident 42')).toBe(0);
    expect(h.calls[0]!.body).toEqual({ reason: 'incident 42' });
    expect(h.out.join('\n')).toContain('pause: rollout r1 is paused');
    const refused = harness({ 'POST /rollouts/r1/pause': [{ status: 409, body: { code: 'INVALID_STATE', message: 'cannot pause: the rollout is completed' } }] });
    expect(await refused.run('rollout', 'pause', 'r1', '-r', 'x')).toBe(2);
    expect(refused.err.join('\n')).toContain('INVALID_STATE');
  });
});

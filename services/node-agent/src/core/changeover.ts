import { ChangeoverError, isChangeoverError, type Module } from '@changeover/contracts';
import { NOOP_UNIT, type UnitTrace } from '@changeover/telemetry';
import type { AffectedProcess } from '../affected/affected-processes.js';
import { internSet, keepVersions, type Journal, type StoredPackage } from '../model/state.js';
import type { AgentCore } from './agent-core.js';
import { analyzeChangeOn } from './views.js';
import { step } from './agent-tracing.js';
import { allOf, localDeadline, withDeadline } from './deadline.js';
import type { PrepareResult } from './ports.js';

export type ChangeoverOutcome =
  | { ok: true; bytesFetched: number; modulesFetched: number; modulesUnchanged: number }
  | { ok: false; code: string; message: string; bytesFetched?: number };

export interface ChangeoverRequest {
  rolloutId: string;
  attempt: number;
  kind: 'commit' | 'regress';
  target: StoredPackage[];
  timeoutMs: number;
  /** The unit of the rollout's trace this changeover records its steps in. */
  trace?: UnitTrace;
}

/**
 * The changeover on one node (claims 8, 13, 14): fetch only the modules the store lacks, barrier,
 * start the new beside the old, health checks, switch, tell the affected processes. The journal is
 * saved before each step, so a crash anywhere is regressed at start-up to the set in `from`.
 */
export async function runChangeover(core: AgentCore, req: ChangeoverRequest): Promise<ChangeoverOutcome> {
  const { store, fetcher, runtime } = core.opts;
  const fault = (p: Parameters<NonNullable<typeof core.opts.onFault>>[0]) => core.opts.onFault?.(p);
  const liveEvery = core.opts.liveProgressEveryMs ?? 1000;
  let lastLive = Date.now();
  const report = (phase: 'fetching' | 'preparing' | 'starting' | 'switching', extra = {}) => {
    if (Date.now() - lastLive < liveEvery) return;
    lastLive = Date.now();
    core.reportPhase(req.rolloutId, req.attempt, phase, extra);
  };
  const from = { active: core.state.active, previous: core.state.previous };
  // Interned: nodes changing over to the same packages share the set and what is derived from it.
  const target = internSet(req.target);
  const aborted = () => core.abortRequested.has(req.rolloutId);
  const deadline = localDeadline(req.timeoutMs);
  const t = req.trace ?? NOOP_UNIT;
  let journal: Journal | null = null;
  // A store in memory saves at once and returns nothing: no promise is waited for then.
  let saving: void | Promise<void>;

  const rollback = async (code: string, message: string, bytesFetched?: number): Promise<ChangeoverOutcome> => {
    if (journal) {
      core.state = { ...core.state, active: from.active, previous: from.previous, journal: null };
      saving = store.save(core.state);
      if (saving) await saving;
    }
    core.phase = 'idle';
    return { ok: false, code, message, ...(bytesFetched !== undefined ? { bytesFetched } : {}) };
  };

  // 1. Fetch: modules are content-addressed, so a digest already in the store is never fetched (claim 13).
  core.phase = 'fetching';
  report('fetching');
  const wanted = new Map<string, Module>();
  for (const p of target) for (const m of p.modules) wanted.set(m.digest, m);
  let bytesFetched = 0;
  let modulesFetched = 0;
  let modulesUnchanged = 0;
  try {
    await step(t, 'agent.fetch', async () => {
      for (const m of wanted.values()) {
        const has = store.hasBlob(m.digest);
        if (typeof has === 'boolean' ? has : await has) {
          modulesUnchanged++;
          continue;
        }
        try {
          const got = fetcher.fetch(m);
          bytesFetched += typeof got === 'number' ? got : await got;
          modulesFetched++;
        } catch (e) {
          core.opts.counters.inc('agent_fetch_failures_total', { code: isChangeoverError(e) ? e.code : 'INTERNAL' });
          throw new ChangeoverError(isChangeoverError(e) ? e.code : 'UNAVAILABLE', `fetching ${m.name} ${m.digest}: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      t.set({ 'changeover.bytes_fetched': bytesFetched, 'changeover.modules_fetched': modulesFetched, 'changeover.modules_unchanged': modulesUnchanged });
    });
  } catch (e) {
    return rollback(isChangeoverError(e) ? e.code : 'UNAVAILABLE', e instanceof Error ? e.message : String(e), bytesFetched);
  }
  core.opts.counters.inc('agent_bytes_fetched_total', {}, bytesFetched);
  journal = { rolloutId: req.rolloutId, attempt: req.attempt, kind: req.kind, step: 'fetched', from, to: target };
  core.state = { ...core.state, journal };
  saving = store.save(core.state);
  if (saving) await saving;
  fault('after-fetch');
  if (aborted()) return rollback('ABORTED', 'aborted before the barrier', bytesFetched);

  // 2. Barrier: the replaced and the affected processes get ready, all of them, by the deadline.
  const analysis = analyzeChangeOn(from.active, target, runtime);
  const base = { rolloutId: req.rolloutId, attempt: req.attempt, changes: analysis.changes, replacedModules: analysis.replacedModules };
  core.phase = 'preparing';
  report('preparing', { bytesFetched, modulesFetched, modulesUnchanged });
  const results = await step(
    t,
    'agent.barrier',
    () => allOf(analysis.affected.map((a) => withDeadline<PrepareResult>(runtime.prepare(a.processId, { ...base, kind: 'prepare', why: a.why, deadlineMs: deadline }), deadline, () => ({ ready: false, message: `not ready within ${deadline} ms` }), (e) => ({ ready: false, message: `prepare failed: ${e instanceof Error ? e.message : String(e)}` })))),
    { 'changeover.processes': analysis.affected.length },
  );
  const notReady: { a: AffectedProcess; r: PrepareResult }[] = [];
  for (let i = 0; i < results.length; i++) if (!results[i]!.ready) notReady.push({ a: analysis.affected[i]!, r: results[i]! });
  if (notReady.length) {
    for (const x of notReady) t.event('not ready', { 'changeover.process_id': x.a.processId });
    return rollback('NOT_READY', notReady.map((x) => `${x.a.processId}: ${x.r.ready ? '' : x.r.message}`).join('; '), bytesFetched);
  }
  journal = { ...journal, step: 'prepared' };
  core.state = { ...core.state, journal };
  saving = store.save(core.state);
  if (saving) await saving;
  fault('after-prepare');
  if (aborted()) return rollback('ABORTED', 'aborted at the barrier', bytesFetched);

  // 3. New beside old; a failed health check leaves the old set running untouched.
  core.phase = 'starting';
  report('starting');
  const started = await step(t, 'agent.health-check', async () => {
    const r = await runtime.startCandidates(target, deadline);
    if (!r.ok) t.fail('HEALTH_CHECK_FAILED', r.output);
    return r;
  });
  if (!started.ok) {
    await runtime.discardCandidates();
    core.opts.counters.inc('agent_health_check_failures_total');
    return rollback('HEALTH_CHECK_FAILED', started.output, bytesFetched);
  }
  if (aborted()) {
    await runtime.discardCandidates();
    return rollback('ABORTED', 'aborted before the switch', bytesFetched);
  }

  // 4. Switch: one atomic save makes the target active; the old processes then stop gracefully.
  core.phase = 'switching';
  report('switching');
  journal = { ...journal, step: 'switched' };
  core.state = {
    ...core.state,
    active: target,
    previous: from.active,
    kept: internSet(keepVersions(core.state.kept, [...from.previous, ...from.active], [...target, ...from.active])),
    journal,
  };
  saving = store.save(core.state);
  if (saving) await saving;
  fault('mid-switch');
  const restarted = await step(t, 'agent.switch', async () => {
    await runtime.switchOver(target);
    const r = await notifyChanged(core, target, analysis.affected, base, deadline);
    if (!r.ok) t.fail('HEALTH_CHECK_FAILED', r.output);
    return r;
  });
  if (!restarted.ok) {
    // A process restarted for the change is unhealthy (its old instance still runs): back to the old set,
    // again new beside old, so the replaced modules serve throughout.
    core.opts.counters.inc('agent_health_check_failures_total');
    const back = await runtime.startCandidates(from.active, deadline);
    if (back.ok) await runtime.switchOver(from.active);
    else {
      await runtime.discardCandidates();
      await runtime.apply(from.active);
    }
    return rollback('HEALTH_CHECK_FAILED', `restarted on change: ${restarted.output}`, bytesFetched);
  }
  fault('before-confirm');

  // 5. Confirm.
  core.state = { ...core.state, journal: null };
  saving = store.save(core.state);
  if (saving) await saving;
  core.phase = 'idle';
  return { ok: true, bytesFetched, modulesFetched, modulesUnchanged };
}

/** Tells the affected processes that still run that the changeover happened; restarts those that ask for it. */
async function notifyChanged(
  core: AgentCore,
  target: StoredPackage[],
  affected: AffectedProcess[],
  base: { rolloutId: string; attempt: number; changes: { name: string; fromVersion: string | null; toVersion: string | null }[]; replacedModules: string[] },
  deadlineMs: number,
): Promise<{ ok: true } | { ok: false; output: string }> {
  const { runtime } = core.opts;
  const live = new Set(runtime.running().map((p) => p.processId));
  const modules = new Map<string, Module>();
  for (const p of target) for (const m of p.modules) modules.set(m.name, m);
  const restart: string[] = [];
  const told: (void | Promise<void>)[] = [];
  for (const a of affected) {
    if (!live.has(a.processId)) continue;
    const mustRestart = modules.get(a.module)?.run?.restartOnChange ?? false;
    if (mustRestart) restart.push(a.processId);
    told.push(withDeadline(runtime.notifyChanged(a.processId, { ...base, kind: 'changed', why: a.why, restart: mustRestart }), 10_000, () => undefined));
  }
  await allOf(told);
  return restart.length ? runtime.restart(restart, deadlineMs) : { ok: true };
}

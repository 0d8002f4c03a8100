import { performance } from 'node:perf_hooks';
import { isChangeoverError, type Verdict } from '@changeover/contracts';
import { changeoverMetrics, NOOP_UNIT, NOOP_UNIT_TRACER, runInContext, withSampledFlag, type Context, type UnitTrace } from '@changeover/telemetry';
import type { AgentCore, AnyCommand } from './agent-core.js';

// A command of a rollout runs as one unit of the rollout's trace (the parent comes from the command's
// headers): propose → vote (one event per process verdict); commit and regress → fetch, barrier,
// health check, switch. Reports sent while it runs carry the same trace, and so do its log lines.

export type AgentTrace = UnitTrace;
export type TraceParent = Context;

const UNIT_NAMES = { propose: 'agent.propose', commit: 'agent.commit', regress: 'agent.regress' } as const;

/** Runs one command as a traced unit, and records the vote and changeover latencies. */
export async function traceUnit(core: AgentCore, cmd: AnyCommand, parent: TraceParent | undefined, fn: (unit: AgentTrace) => Promise<void>): Promise<void> {
  const tracer = core.opts.tracing ?? NOOP_UNIT_TRACER;
  // Without a tracer (a simulated fleet sampled at 0) not even the context is entered: no cost per node.
  if (!core.opts.tracing) parent = undefined;
  const unit =
    parent && cmd.kind !== 'abort'
      ? tracer.unit(UNIT_NAMES[cmd.kind], parent, core.nodeId, { 'changeover.rollout_id': cmd.body.rolloutId, 'changeover.attempt': cmd.body.attempt, 'changeover.node_id': core.nodeId, 'changeover.class_id': core.opts.identity.classId })
      : NOOP_UNIT;
  const started = performance.now();
  // Reports of a node the ratio did not pick go out unsampled, so the services do not record a span
  // for each of 100,000 reports either; the trace id still rides along (logs, events).
  const active = parent && tracer.enabled && cmd.kind !== 'abort' ? withSampledFlag(parent, unit.sampled) : parent;
  try {
    await (active ? runInContext(active, () => fn(unit)) : fn(unit));
    if (cmd.kind === 'commit' || cmd.kind === 'regress') {
      const rec = core.record(cmd.body.rolloutId);
      const final = cmd.kind === 'commit' ? rec?.final : rec?.regressFinal;
      if (final && final.attempt === cmd.body.attempt) {
        if (unit.recording) unit.set({ 'changeover.phase': final.phase, ...(final.bytesFetched !== undefined ? { 'changeover.bytes_fetched': final.bytesFetched } : {}) });
        if (final.error) unit.fail(final.error.code, final.error.message);
        if (cmd.kind === 'commit' && final.phase === 'completed') changeoverMetrics.changeoverLatency.observe((performance.now() - started) / 1000);
        if (final.bytesFetched) changeoverMetrics.fetchedBytes.inc(final.bytesFetched);
      }
    } else if (cmd.kind === 'propose') {
      changeoverMetrics.voteLatency.observe((performance.now() - started) / 1000);
    }
  } catch (e) {
    unit.fail(isChangeoverError(e) ? e.code : 'INTERNAL', e instanceof Error ? e.message : String(e));
    throw e;
  } finally {
    unit.end();
  }
}

/** Each process's verdict as an event of the vote span; votes by decision and vetoes by reason counted (dry runs are not). */
export function vetoMetrics(verdicts: readonly Verdict[], cmd: { dryRun: boolean; forced: boolean }, unit: AgentTrace): void {
  const dryRun = cmd.dryRun;
  if (!dryRun) changeoverMetrics.votes.inc({ decision: verdicts.some((v) => v.decision === 'veto') && !cmd.forced ? 'veto' : 'accept' });
  for (const v of verdicts) {
    if (unit.recording) unit.event('verdict', { 'changeover.process_id': v.processId, ...(v.module ? { 'changeover.module': v.module } : {}), 'changeover.decision': v.decision, ...(v.decision === 'veto' ? { 'changeover.reason': v.reason, 'changeover.message': v.message.slice(0, 256) } : {}) });
    if (v.decision === 'veto' && !dryRun) changeoverMetrics.vetoes.inc({ reason: v.reason });
  }
}

/** `unit.step`, or just `fn` on the no-op unit: a node that records nothing pays no promise for the step. */
export function step<T>(unit: AgentTrace, name: string, fn: () => T | Promise<T>, attributes?: Parameters<UnitTrace['step']>[2]): T | Promise<T> {
  return unit === NOOP_UNIT ? fn() : unit.step(name, fn, attributes);
}

import { ROOT_CONTEXT, SpanKind, tracer, withSpan, contextFromTraceparent, type Attributes, type Context } from '@changeover/telemetry';
import type { StoredEvent } from '@changeover/event-store';
import type { RolloutEvent } from '../rollout/rollout.events.js';
import type { ActiveState, RolloutState } from '../rollout/rollout.state.js';
import type { Action } from './rollout.workflow.js';

// One trace per rollout (DESIGN §9): the root span is opened at creation and its traceparent stored
// in the first event's metadata; every step span of any instance, before or after a restart, takes
// that stored context as its parent. Agents continue the trace from the command headers.

const TRACER = 'changeover.rollout';

/** The rollout's trace, from its first stored event (ROOT_CONTEXT for a rollout created without one). */
export function rolloutTraceContext(first: StoredEvent | undefined): Context {
  return contextFromTraceparent(first?.metadata?.traceparent);
}

type SendAction = Extract<Action, { kind: 'propose' | 'commit' | 'abort' | 'regress' }>;

const recipientsOf = (a: SendAction): Attributes => (a.to.kind === 'class' ? { 'changeover.class_id': a.to.classId } : { 'changeover.nodes': a.to.nodeIds.length });

/** A span around sending one command to nodes; the agents' spans are its children (headers carry it). */
export function traceSend<T>(parent: Context, state: ActiveState, a: SendAction, fn: () => Promise<T>): Promise<T> {
  const name = a.kind === 'commit' ? 'rollout.commit-wave' : `rollout.${a.kind}`;
  const attributes: Attributes = { 'changeover.rollout_id': state.rolloutId, 'changeover.attempt': a.attempt, ...recipientsOf(a) };
  if (a.kind === 'commit') {
    attributes['changeover.wave'] = Math.max(0, state.waves.length - 1);
    attributes['changeover.forced'] = a.forced;
  }
  return withSpan(name, fn, { parent, attributes, kind: SpanKind.PRODUCER, tracerName: TRACER });
}

/** A span around one rollout step the service decides itself (verify) or an operator's command (force, cancel…). */
export function traceStep<T>(parent: Context, name: string, rolloutId: string, fn: () => Promise<T>): Promise<T> {
  return withSpan(name, fn, { parent, attributes: { 'changeover.rollout_id': rolloutId }, tracerName: TRACER });
}

/**
 * Spans for decisions an append made: the vote tally (from the proposal to accepted or blocked, one
 * event per veto). Times come from the events, so the spans are right after a restart.
 */
export function traceDecisions(parent: Context, before: RolloutState, after: RolloutState, events: readonly RolloutEvent[]): void {
  if (parent === ROOT_CONTEXT || after.status === 'initial') return;
  let proposedAt = before.status === 'voting' ? Date.parse(before.voteDeadline) - before.policy.voteTimeoutMs : NaN;
  for (const e of events) {
    switch (e.type) {
      case 'rollout.proposed':
        if (!e.data.dryRun) proposedAt = Date.parse(e.data.at);
        break;
      case 'rollout.accepted':
      case 'rollout.blocked': {
        const at = Date.parse(e.data.at);
        const span = tracer(TRACER).startSpan('rollout.vote-tally', { startTime: Number.isFinite(proposedAt) ? proposedAt : at, attributes: { 'changeover.rollout_id': e.data.rolloutId, 'changeover.attempt': e.data.attempt, 'changeover.outcome': e.type === 'rollout.accepted' ? 'accepted' : 'blocked' } }, parent);
        if (span.isRecording()) {
          if (e.type === 'rollout.accepted') span.setAttribute('changeover.nodes', e.data.nodes);
          else {
            span.setAttribute('changeover.vetoes', e.data.vetoCount);
            for (const v of e.data.vetoes.slice(0, 100)) span.addEvent('veto', { 'changeover.node_id': v.nodeId, 'changeover.process_id': v.processId, 'changeover.reason': v.reason }, at);
          }
        }
        span.end(Math.max(at, Number.isFinite(proposedAt) ? proposedAt : at));
        break;
      }
      default:
        break;
    }
  }
}

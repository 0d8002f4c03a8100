import { changeoverMetrics, metrics } from '@changeover/telemetry';
import type { RolloutEvent } from '../rollout/rollout.events.js';
import { NODE_PHASE_LIST, vetoesOf, type ActiveState, type NodePhase, type RolloutState } from '../rollout/rollout.state.js';

const m = changeoverMetrics;
const nodesRetried = metrics.counter({ name: 'changeover_rollout_nodes_retried_total', help: 'Failed or timed-out nodes an operator had committed again' });
const windowWaits = metrics.counter({ name: 'changeover_rollout_window_waits_total', help: 'Times a rollout had to wait for a maintenance window before its next wave' });
const seconds = (from: number, to: string) => Math.max(0, (Date.parse(to) - from) / 1000);

/**
 * Counts what one append wrote (events, vetoes) and the per-node latencies it closes, from the
 * event times alone: `before` is the state the events were decided on, `after` the state they made.
 */
export function recordAppended(before: RolloutState, after: RolloutState, events: readonly RolloutEvent[]): void {
  m.eventsAppended.inc(events.length);
  // The proposal time of the current attempt: voting states carry it as deadline minus timeout.
  let proposedAt = before.status === 'voting' ? Date.parse(before.voteDeadline) - before.policy.voteTimeoutMs : NaN;
  for (const e of events) {
    switch (e.type) {
      case 'rollout.proposed':
        if (!e.data.dryRun) proposedAt = Date.parse(e.data.at);
        break;
      case 'rollout.votes-recorded':
        for (const v of e.data.votes) {
          if (Number.isFinite(proposedAt)) m.voteLatency.observe(seconds(proposedAt, e.data.at));
          if (v.decision === 'veto') for (const x of vetoesOf(v.nodeId, v.verdicts)) m.vetoes.inc({ reason: x.reason });
        }
        break;
      case 'rollout.node-unreachable':
        if (e.data.treatedAs === 'veto') m.vetoes.inc({ reason: 'NO_ANSWER' }, e.data.nodeIds.length);
        break;
      case 'rollout.nodes-completed': {
        if (after.status === 'initial') break;
        // The commit went out when the node's wave started.
        for (const n of e.data.nodes) {
          const entry = after.nodes.get(n.nodeId);
          const wave = entry?.wave;
          // A retried node's commit went out with its retry.
          const retried = entry?.attempt === undefined ? undefined : after.retries.find((r) => r.attempt === entry.attempt)?.at;
          const started = retried ?? (wave === undefined ? undefined : after.waves[wave]?.startedAt);
          if (started) m.changeoverLatency.observe(seconds(Date.parse(started), e.data.at));
        }
        break;
      }
      case 'rollout.nodes-retried':
        nodesRetried.inc(e.data.nodeIds.length);
        break;
      case 'rollout.window-wait':
        windowWaits.inc();
        break;
      default:
        break;
    }
  }
}

const NO_ROLLOUTS: Record<ActiveState['status'], number> = { scheduled: 0, created: 0, voting: 0, blocked: 0, applying: 0, paused: 0, verifying: 0, completed: 0, cancelled: 0, aborted: 0, failed: 0 };

/** Sets the gauges before a scrape: rollouts by state (shared projection), nodes by phase (rollouts owned here). */
export function setRolloutGauges(byStatus: Record<string, number>, owned: readonly RolloutState[]): void {
  for (const [state, n] of Object.entries({ ...NO_ROLLOUTS, ...byStatus })) m.rollouts.set({ state }, n);
  const phases = Object.fromEntries(NODE_PHASE_LIST.map((p) => [p, 0])) as Record<NodePhase, number>;
  for (const s of owned) if (s.status !== 'initial') for (const p of NODE_PHASE_LIST) phases[p] += s.counts[p];
  for (const p of NODE_PHASE_LIST) m.nodesByPhase.set({ phase: p }, phases[p]);
}

import { metrics } from './registry.js';

// The metric names every part shares (DESIGN §9). Dashboards and alerts key on them: do not rename.
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export const changeoverMetrics = {
  /** Rollouts currently in each state (set by the rollout service from its projection). */
  rollouts: metrics.gauge({ name: 'changeover_rollouts', help: 'Rollouts by state', labelNames: ['state'] as const }),
  /** Nodes of active rollouts in each phase (proposed, voted, committing, done, regressed…). */
  nodesByPhase: metrics.gauge({ name: 'changeover_nodes_by_phase', help: 'Nodes of active rollouts by phase', labelNames: ['phase'] as const }),
  /** From propose sent to vote received, per node. */
  voteLatency: metrics.histogram({ name: 'changeover_vote_latency_seconds', help: 'Time from propose to vote per node', buckets: LATENCY_BUCKETS }),
  /** From commit sent to completion reported, per node. */
  changeoverLatency: metrics.histogram({ name: 'changeover_changeover_latency_seconds', help: 'Time from commit to changeover completed per node', buckets: LATENCY_BUCKETS }),
  vetoes: metrics.counter({ name: 'changeover_vetoes_total', help: 'Vetoes by reason', labelNames: ['reason'] as const }),
  /** Votes sent by nodes (agents), by decision. */
  votes: metrics.counter({ name: 'changeover_votes_total', help: 'Votes cast by nodes, by decision', labelNames: ['decision'] as const }),
  /** Module bytes nodes fetched for changeovers (agents). */
  fetchedBytes: metrics.counter({ name: 'changeover_fetched_bytes_total', help: 'Module bytes fetched by nodes for changeovers' }),
  eventsAppended: metrics.counter({ name: 'changeover_events_appended_total', help: 'Events appended to the event store' }),
  /** Events committed in Postgres but not yet relayed to JetStream. */
  outboxLag: metrics.gauge({ name: 'changeover_outbox_lag_events', help: 'Events not yet relayed to JetStream' }),
  deliveries: metrics.counter({ name: 'changeover_deliveries_total', help: 'Notification deliveries by channel and outcome', labelNames: ['channel', 'outcome'] as const }),
  rejectedMessages: metrics.counter({ name: 'changeover_rejected_messages_total', help: 'Messages and requests rejected as malformed, by subject kind and error code', labelNames: ['subject_kind', 'code'] as const }),
};

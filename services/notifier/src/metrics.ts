import { changeoverMetrics, enableDefaultMetrics, metrics, registry } from '@changeover/telemetry';

/** The notifier's Prometheus metrics, in the shared registry that /metrics serves. */
export function createNotifierMetrics() {
  enableDefaultMetrics();
  return {
    registry,
    /** changeover_deliveries_total{channel, outcome = delivered | retry | dead | superseded}. */
    deliveries: changeoverMetrics.deliveries,
    deliveryLatency: metrics.histogram({
      name: 'changeover_delivery_latency_seconds',
      help: 'Latency of one delivery attempt.',
      labelNames: ['channel'] as const,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    }),
    events: metrics.counter({
      name: 'changeover_notifier_events_total',
      help: 'Events read from CHANGEOVER_EVENTS by outcome (matched, unmatched, unknown-type, invalid).',
      labelNames: ['outcome'] as const,
    }),
    /** The notifier's outbox: deliveries recorded but not yet sent (refreshed by the worker when idle, at most each second). */
    pendingDeliveries: metrics.gauge({ name: 'changeover_notifier_pending_deliveries', help: 'Deliveries waiting to be sent or retried (the notifier outbox)' }),
    requestErrors: metrics.counter({ name: 'changeover_notifier_request_errors_total', help: 'REST requests refused, by error code.', labelNames: ['code'] as const }),
  };
}
export type NotifierMetrics = ReturnType<typeof createNotifierMetrics>;

import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The notifier's Prometheus metrics, on its own registry so several notifiers can share a process (tests). */
export function createNotifierMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    deliveries: new Counter({
      name: 'changeover_deliveries_total',
      help: 'Notification delivery attempts by channel and outcome (delivered, retry, dead).',
      labelNames: ['channel', 'outcome'] as const,
      registers: [registry],
    }),
    deliveryLatency: new Histogram({
      name: 'changeover_delivery_latency_seconds',
      help: 'Latency of one delivery attempt.',
      labelNames: ['channel'] as const,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    events: new Counter({
      name: 'changeover_notifier_events_total',
      help: 'Events read from CHANGEOVER_EVENTS by outcome (matched, unmatched, unknown-type, invalid).',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    requestErrors: new Counter({
      name: 'changeover_notifier_request_errors_total',
      help: 'REST requests refused, by error code.',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
  };
}
export type NotifierMetrics = ReturnType<typeof createNotifierMetrics>;

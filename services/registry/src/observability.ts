import { metrics, type Logger } from '@changeover/telemetry';

export type { Logger };

// The registry's counters: each also feeds the shared Prometheus registry served on /metrics.
const SPECS = {
  registry_events_appended_total: { help: 'Registry events appended to the event store (in the transaction of their row)', labels: [] },
  registry_event_append_failures_total: { help: 'Registry events whose append failed (their row was rolled back with them)', labels: [] },
  registry_publish_rejected_total: { help: 'Package publishes refused, by error code', labels: ['code'] },
  registry_packages_published_total: { help: 'Package versions stored', labels: [] },
  registry_packages_pruned_total: { help: 'Package versions pruned by retention', labels: [] },
  registry_blob_uploads_rejected_total: { help: 'Blob uploads refused, by error code', labels: ['code'] },
  registry_images_imported_total: { help: 'Update images imported', labels: [] },
  registry_images_rejected_total: { help: 'Update images refused, by error code', labels: ['code'] },
  registry_inventories_turned_stale_total: { help: 'Stored node inventories found stale by a heartbeat claiming another digest', labels: [] },
  registry_rollout_inventories_total: { help: 'Node inventories taken from rollout events (nodes-completed, node-regressed), by outcome: stored, not_enrolled, invalid', labels: ['outcome'] },
  registry_agent_reports_total: { help: 'Agent reports processed, by kind', labels: ['report'] },
  registry_agent_reports_rejected_total: { help: 'Agent reports rejected (malformed, refused, or failed), by kind and error code', labels: ['report', 'code'] },
  registry_requests_rejected_total: { help: 'REST requests answered with an error, by code', labels: ['code'] },
  registry_node_credentials_issued_total: { help: 'NATS credentials minted for nodes at enrollment', labels: [] },
  registry_node_credentials_revoked_total: { help: 'Node NATS credentials (user keys) revoked', labels: [] },
  registry_revocation_pushes_total: { help: 'Account JWT pushes carrying the revocation list, by outcome', labels: ['outcome'] },
  registry_rpc_rejected_total: { help: 'NATS requests whose handler answered with an error, by operation and code (malformed ones are counted by the messaging layer)', labels: ['op', 'code'] },
} as const;
export type CounterName = keyof typeof SPECS;

type PromCounter = ReturnType<typeof metrics.counter>;
/** The Prometheus counter of each name, looked up once (not per increment: reports come by the ten thousand). */
const promCounters = new Map<CounterName, PromCounter>();
function promCounter(name: CounterName): PromCounter {
  let c = promCounters.get(name);
  if (!c) {
    const spec = SPECS[name];
    c = metrics.counter({ name: `changeover_${name}`, help: spec.help, labelNames: spec.labels });
    promCounters.set(name, c);
  }
  return c;
}

/** Counters readable in-process (tests, health) and exported to Prometheus. */
export class Counters {
  private readonly values = new Map<string, number>();

  inc(name: CounterName, by = 1, labels: Record<string, string> = {}): void {
    if (by <= 0) return;
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    this.values.set(key, (this.values.get(key) ?? 0) + by);
    promCounter(name).inc(labels, by);
  }

  /** The sum over every label set of one counter, or of those whose labels include `match`. */
  get(name: CounterName, match: Record<string, string> = {}): number {
    let sum = 0;
    for (const [key, v] of this.values) {
      if (!key.startsWith(`${name}[`)) continue;
      const labels = Object.fromEntries(JSON.parse(key.slice(name.length)) as [string, string][]);
      if (Object.entries(match).every(([k, x]) => labels[k] === x)) sum += v;
    }
    return sum;
  }
}

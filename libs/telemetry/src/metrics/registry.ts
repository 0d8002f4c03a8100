import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ChangeoverError } from '@changeover/contracts';

/** The one registry every Changeover part registers into and `/metrics` serves. */
export const registry = new Registry();

const scrapeHooks = new Set<() => void>();
// Registered first, so its collect runs before any other metric is read: gauges set by a hook are current.
new Gauge({
  name: 'changeover_scrape_hooks',
  help: 'Callbacks run before each scrape to set gauges',
  registers: [registry],
  collect() {
    for (const hook of scrapeHooks) {
      try {
        hook();
      } catch {
        // A failing hook leaves its gauge at the last value; the scrape goes on.
      }
    }
    this.set(scrapeHooks.size);
  },
});

/** Runs `fn` before each scrape (to set gauges read from live state, e.g. an outbox relay's lag); returns the way to remove it. */
export function onScrape(fn: () => void): () => void {
  if (typeof fn !== 'function') throw new ChangeoverError('VALIDATION_FAILED', 'onScrape needs a function');
  scrapeHooks.add(fn);
  return () => void scrapeHooks.delete(fn);
}

export const METRIC_PREFIX = 'changeover_';
const NAME = /^[a-z_][a-z0-9_]{0,127}$/;
const LABEL = /^[a-z_][a-z0-9_]{0,63}$/;

export interface MetricSpec<L extends string> {
  /** With or without the `changeover_` prefix; it is added when missing. */
  name: string;
  help: string;
  labelNames?: readonly L[];
}

export interface HistogramSpec<L extends string> extends MetricSpec<L> {
  buckets?: number[];
}

function fullName(spec: MetricSpec<string>): string {
  if (!spec || typeof spec.name !== 'string' || !NAME.test(spec.name)) throw new ChangeoverError('VALIDATION_FAILED', `metric name ${JSON.stringify(String(spec?.name).slice(0, 80))} must match ${NAME.source}`);
  if (typeof spec.help !== 'string' || spec.help.length === 0) throw new ChangeoverError('VALIDATION_FAILED', `metric ${spec.name} needs a help text`);
  for (const l of spec.labelNames ?? []) {
    if (typeof l !== 'string' || !LABEL.test(l)) throw new ChangeoverError('VALIDATION_FAILED', `metric ${spec.name}: label ${JSON.stringify(String(l).slice(0, 40))} must match ${LABEL.source}`);
  }
  return spec.name.startsWith(METRIC_PREFIX) ? spec.name : `${METRIC_PREFIX}${spec.name}`;
}

// Creating the same metric twice (two modules, or a module loaded twice) returns the first one.
function existing<T>(name: string, kind: new (...args: never[]) => T): T | undefined {
  const found = registry.getSingleMetric(name);
  if (!found) return undefined;
  if (found instanceof kind) return found;
  throw new ChangeoverError('CONFLICT', `metric ${name} is already registered with another type`);
}

/** Helpers that create (or return the already registered) `changeover_*` metrics. */
export const metrics = {
  counter<L extends string = string>(spec: MetricSpec<L>): Counter<L> {
    const name = fullName(spec);
    return existing<Counter<L>>(name, Counter) ?? new Counter<L>({ name, help: spec.help, labelNames: spec.labelNames ?? [], registers: [registry] });
  },
  gauge<L extends string = string>(spec: MetricSpec<L>): Gauge<L> {
    const name = fullName(spec);
    return existing<Gauge<L>>(name, Gauge) ?? new Gauge<L>({ name, help: spec.help, labelNames: spec.labelNames ?? [], registers: [registry] });
  },
  histogram<L extends string = string>(spec: HistogramSpec<L>): Histogram<L> {
    const name = fullName(spec);
    return (
      existing<Histogram<L>>(name, Histogram) ??
      new Histogram<L>({ name, help: spec.help, labelNames: spec.labelNames ?? [], registers: [registry], ...(spec.buckets ? { buckets: spec.buckets } : {}) })
    );
  },
};

let defaultsOn = false;
/** Adds the Node process metrics (CPU, memory, event loop) to the registry, once. */
export function enableDefaultMetrics(): void {
  if (defaultsOn) return;
  defaultsOn = true;
  collectDefaultMetrics({ register: registry });
}

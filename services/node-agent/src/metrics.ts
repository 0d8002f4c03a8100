import type { Counters } from './core/ports.js';

/** Counters in Prometheus text format; one registry per agent process (shared by simulated nodes). */
export class CounterRegistry implements Counters {
  private readonly values = new Map<string, number>();
  /** The series key of each (name, labels as given) seen, so a hot counter does not sort and escape its labels on every increment. */
  private readonly keys = new Map<string, string>();

  inc(name: string, labels: Record<string, string> = {}, by = 1): void {
    let raw: string | null = name;
    for (const k of Object.keys(labels)) {
      const v = labels[k]!;
      // A NUL inside a label would make two label sets look alike: such a series is keyed the long way.
      if (k.includes('\u0000') || v.includes('\u0000')) {
        raw = null;
        break;
      }
      raw += `\u0000${k}\u0000${v}`;
    }
    let key = raw === null ? undefined : this.keys.get(raw);
    if (key === undefined) {
      key = seriesKey(name, labels);
      if (raw !== null) {
        if (this.keys.size >= 10_000) this.keys.clear();
        this.keys.set(raw, key);
      }
    }
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }

  get(name: string, labels: Record<string, string> = {}): number {
    let total = 0;
    for (const [key, v] of this.values) {
      if (key !== name && !key.startsWith(`${name}{`)) continue;
      if (Object.entries(labels).every(([k, lv]) => key.includes(`${k}="${lv}"`))) total += v;
    }
    return total;
  }

  render(): string {
    const names = new Set([...this.values.keys()].map((k) => k.split('{')[0]!));
    const lines: string[] = [];
    for (const n of [...names].sort()) {
      lines.push(`# TYPE ${n} counter`);
      for (const [k, v] of this.values) if (k.split('{')[0] === n) lines.push(`${k} ${v}`);
    }
    return `${lines.join('\n')}\n`;
  }
}

function seriesKey(name: string, labels: Record<string, string>): string {
  return `${name}${Object.keys(labels).length ? `{${Object.entries(labels).sort().map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, '_')}"`).join(',')}}` : ''}`;
}

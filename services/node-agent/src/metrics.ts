import type { Counters } from './core/ports.js';

/** Counters in Prometheus text format; one registry per agent process (shared by simulated nodes). */
export class CounterRegistry implements Counters {
  private readonly values = new Map<string, number>();

  inc(name: string, labels: Record<string, string> = {}, by = 1): void {
    const key = `${name}${Object.keys(labels).length ? `{${Object.entries(labels).sort().map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, '_')}"`).join(',')}}` : ''}`;
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

import { describe, expect, it } from '@jest/globals';
import { ChangeoverError } from '@changeover/contracts';
import { changeoverMetrics, metrics, onScrape, registry } from '../index.js';

describe('metrics', () => {
  it('predefines the shared metric names', async () => {
    const names = (await registry.getMetricsAsJSON()).map((m) => m.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'changeover_rollouts',
        'changeover_nodes_by_phase',
        'changeover_vote_latency_seconds',
        'changeover_changeover_latency_seconds',
        'changeover_vetoes_total',
        'changeover_events_appended_total',
        'changeover_outbox_lag_events',
        'changeover_deliveries_total',
        'changeover_rejected_messages_total',
      ]),
    );
  });

  it('prefixes names, returns the same metric when created twice and exposes it', async () => {
    const a = metrics.counter({ name: 'widgets_total', help: 'Widgets', labelNames: ['kind'] as const });
    const b = metrics.counter({ name: 'changeover_widgets_total', help: 'Widgets', labelNames: ['kind'] as const });
    expect(a).toBe(b);
    a.inc({ kind: 'x' }, 2);
    changeoverMetrics.vetoes.inc({ reason: 'PROCESS_BUSY' });
    changeoverMetrics.voteLatency.observe(0.2);
    const text = await registry.metrics();
    expect(text).toContain('changeover_widgets_total{kind="x"} 2');
    expect(text).toContain('changeover_vetoes_total{reason="PROCESS_BUSY"} 1');
    expect(text).toMatch(/changeover_vote_latency_seconds_bucket\{le="0.25"\} 1/);
  });

  it('refuses bad names, labels and type clashes with typed errors', () => {
    expect(() => metrics.counter({ name: 'Bad-Name', help: 'x' })).toThrow(ChangeoverError);
    expect(() => metrics.gauge({ name: 'ok_gauge', help: '' })).toThrow(/help/);
    expect(() => metrics.histogram({ name: 'ok_hist', help: 'x', labelNames: ['bad label'] })).toThrow(/label/);
    expect(() => metrics.gauge({ name: 'changeover_vetoes_total', help: 'x' })).toThrow(expect.objectContaining({ code: 'CONFLICT' }));
  });

  it('runs scrape hooks before the gauges are read, survives a failing hook, and removes a hook', async () => {
    let lag = 7;
    const off = onScrape(() => changeoverMetrics.outboxLag.set(lag));
    const offBad = onScrape(() => {
      throw new Error('broken');
    });
    expect(await registry.metrics()).toMatch(/^changeover_outbox_lag_events 7$/m);
    lag = 3;
    expect(await registry.metrics()).toMatch(/^changeover_outbox_lag_events 3$/m);
    off();
    offBad();
    lag = 99;
    expect(await registry.metrics()).toMatch(/^changeover_outbox_lag_events 3$/m);
    expect(() => onScrape('x' as never)).toThrow(ChangeoverError);
  });
});

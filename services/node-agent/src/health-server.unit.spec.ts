import { afterEach, describe, expect, it } from '@jest/globals';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { changeoverMetrics } from '@changeover/telemetry';
import { startHealthServer } from './health-server.js';
import { CounterRegistry } from './metrics.js';

describe('agent health server', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
  });

  it('answers /health/live always and /health/ready (and the older /live, /ready) by the readiness probe', async () => {
    let ready = false;
    server = await startHealthServer(0, () => ready, new CounterRegistry(), () => ({}));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const get = async (path: string) => {
      const res = await fetch(`${base}${path}`);
      return { status: res.status, body: await res.text() };
    };
    expect(await get('/health/live')).toEqual({ status: 200, body: JSON.stringify({ status: 'ok' }) });
    expect(await get('/health/ready')).toEqual({ status: 503, body: JSON.stringify({ status: 'unavailable', checks: { agent: false } }) });
    expect((await get('/ready')).status).toBe(503);
    ready = true;
    expect(await get('/health/ready')).toEqual({ status: 200, body: JSON.stringify({ status: 'ok', checks: { agent: true } }) });
    expect((await get('/live')).status).toBe(200);
    expect((await get('/ready')).status).toBe(200);
    expect((await get('/health/nope')).status).toBe(404);
  });

  it('serves the agent counters and the shared changeover_* metrics on /metrics, gauges set at scrape time', async () => {
    const counters = new CounterRegistry();
    counters.inc('agent_votes_total', { decision: 'veto' });
    changeoverMetrics.vetoes.inc({ reason: 'PROCESS_BUSY' });
    server = await startHealthServer(0, () => true, counters, () => ({ agent_rss_bytes: 1234 }));
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`);
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(text).toContain('agent_votes_total{decision="veto"} 1');
    expect(text).toMatch(/^changeover_vetoes_total\{reason="PROCESS_BUSY"\} [1-9]/m);
    expect(text).toContain('changeover_agent_rss_bytes 1234');
    expect(text).toContain('# TYPE changeover_changeover_latency_seconds histogram');
  });
});

import { createServer, type Server } from 'node:http';
import { metrics, registry } from '@changeover/telemetry';
import type { CounterRegistry } from './metrics.js';

/**
 * /health/live, /health/ready (and the older /live, /ready) and /metrics for Kubernetes probes and
 * Prometheus: the agent's own counters (`agent_*`) and the shared `changeover_*` set (votes and vetoes
 * by reason, vote and changeover latency, fetched bytes) with the gauges set at scrape time.
 */
export async function startHealthServer(port: number, ready: () => boolean, counters: CounterRegistry, gauges: () => Record<string, number>): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === '/health/live') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ok' }));
    if (req.url === '/health/ready') {
      const ok = ready();
      return void res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: ok ? 'ok' : 'unavailable', checks: { agent: ok } }));
    }
    if (req.url === '/live') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    if (req.url === '/ready') return void res.writeHead(ready() ? 200 : 503, { 'content-type': 'text/plain' }).end(ready() ? 'ready' : 'starting');
    if (req.url === '/metrics') {
      for (const [name, value] of Object.entries(gauges())) metrics.gauge({ name, help: `agent gauge ${name}` }).set(value);
      return void registry.metrics().then(
        (shared) => res.writeHead(200, { 'content-type': registry.contentType }).end(`${counters.render()}${shared}`),
        (e: unknown) => res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'INTERNAL', message: `metrics collection failed: ${e instanceof Error ? e.message : String(e)}` })),
      );
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'NOT_FOUND', message: `no route ${req.url}` }));
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '0.0.0.0', () => resolve()));
  return server;
}

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { ChangeoverError } from '@changeover/contracts';
import { registry } from './registry.js';

/** Serves the registry in the Prometheus text format; mount it on GET /metrics. */
export async function metricsHandler(_req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    const body = await registry.metrics();
    res.writeHead(200, { 'content-type': registry.contentType });
    res.end(body);
  } catch (err) {
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ code: 'INTERNAL', message: `metrics collection failed: ${err instanceof Error ? err.message : String(err)}` }));
  }
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/** A tiny HTTP server answering GET /metrics (for processes without an HTTP server, such as the agent). Port 0 picks a free one. */
export async function serveMetrics(port: number, host = '0.0.0.0'): Promise<MetricsServer> {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ChangeoverError('VALIDATION_FAILED', `metrics port must be an integer in 0..65535 (got ${String(port)})`);
  const server = createServer((req, res) => {
    if (req.method === 'GET' && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) return void metricsHandler(req, res);
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ code: 'NOT_FOUND', message: 'only GET /metrics is served here' }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new ChangeoverError('UNAVAILABLE', `cannot listen on ${host}:${port}: ${e.message}`)));
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

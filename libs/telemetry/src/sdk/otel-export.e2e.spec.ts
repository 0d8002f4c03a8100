import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

// Auto-instrumentation and the preload entry only work in a real process, so the SDK is exercised in a child.
const dist = fileURLToPath(new URL('../../dist/', import.meta.url));
const run = promisify(execFile);

interface OtlpSpan { name: string; traceId: string; attributes: { key: string; value: { stringValue?: string } }[] }
interface OtlpBody { resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: OtlpSpan[] }[] }[] }

let receiver: Server;
let port: number;
const bodies: OtlpBody[] = [];

beforeAll(async () => {
  if (!existsSync(`${dist}otel.js`)) throw new Error('build first: npx tsc -b libs/telemetry');
  receiver = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      if (req.url === '/v1/traces') bodies.push(JSON.parse(text) as OtlpBody);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
  port = (receiver.address() as { port: number }).port;
});

afterAll(() => new Promise<void>((r) => receiver.close(() => r())));

const script = `
const t = await import(${JSON.stringify(`${dist}index.js`)});
const { shutdownTelemetry } = await import(${JSON.stringify(`${dist}otel.js`)});
await t.withSpan('child-work', () => t.withSpan('child-step', () => 1), { attributes: { 'changeover.rollout_id': 'r-42' } });
await shutdownTelemetry();
console.log(JSON.stringify({ enabled: t.telemetryEnabled() }));
`;

describe('OpenTelemetry preload', () => {
  it('exports spans by OTLP/HTTP JSON with the service name from OTEL_SERVICE_NAME', async () => {
    await run(process.execPath, ['--import', `${dist}otel.js`, '--input-type=module', '-e', script], {
      env: { PATH: process.env['PATH'], OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_SERVICE_NAME: 'changeover-test' },
      timeout: 30_000,
    });
    const spans = bodies.flatMap((b) => b.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((s) => s.spans.map((span) => ({ span, resource: rs.resource })))));
    const work = spans.find((s) => s.span.name === 'child-work')!;
    const step = spans.find((s) => s.span.name === 'child-step')!;
    expect(work.span.traceId).toBe(step.span.traceId);
    expect(work.span.attributes).toContainEqual({ key: 'changeover.rollout_id', value: { stringValue: 'r-42' } });
    expect(work.resource.attributes).toContainEqual({ key: 'service.name', value: { stringValue: 'changeover-test' } });
  });

  it('exports nothing and starts fine when no endpoint is set', async () => {
    const before = bodies.length;
    const { stdout } = await run(process.execPath, ['--import', `${dist}otel.js`, '--input-type=module', '-e', script], { env: { PATH: process.env['PATH'] }, timeout: 30_000 });
    expect(JSON.parse(stdout.trim())).toEqual({ enabled: false });
    expect(bodies.length).toBe(before);
  });
});

import { afterEach, describe, expect, it } from '@jest/globals';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
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
});

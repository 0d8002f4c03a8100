import { describe, expect, it } from '@jest/globals';
import { ChangeoverError } from '@changeover/contracts';
import { changeoverMetrics, serveMetrics } from '../index.js';

describe('serveMetrics', () => {
  it('serves the shared registry on GET /metrics and 404 elsewhere', async () => {
    changeoverMetrics.eventsAppended.inc(3);
    const server = await serveMetrics(0, '127.0.0.1');
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/text\/plain/);
      expect(await res.text()).toContain('changeover_events_appended_total 3');
      const other = await fetch(`http://127.0.0.1:${server.port}/other`);
      expect(other.status).toBe(404);
      expect(await other.json()).toMatchObject({ code: 'NOT_FOUND' });
    } finally {
      await server.close();
    }
  });

  it('refuses a bad port and a taken port with typed errors', async () => {
    await expect(serveMetrics(70_000)).rejects.toThrow(ChangeoverError);
    const first = await serveMetrics(0, '127.0.0.1');
    try {
      await expect(serveMetrics(first.port, '127.0.0.1')).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    } finally {
      await first.close();
    }
  });
});

import { get } from 'node:http';
import { expect } from '@jest/globals';
import { http } from './processes.js';

// What the agent self-upgrade e2e specs do to a module the agent runs: ask it over loopback without pause,
// and publish the packages they roll out.

/** One GET over loopback: the body of a 200 answer, anything else (also no answer within 5 s) an error. */
export function fetchText(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`status ${res.statusCode}`))));
    })
      .on('timeout', function (this: { destroy(e: Error): void }) {
        this.destroy(new Error('timeout'));
      })
      .on('error', reject);
  });
}

/**
 * A request loop until stopped: every request must be answered 200; failures are counted, the first five
 * kept. `max` bounds it; `paceMs` spaces requests so the loop spans a long upgrade without using up `max`.
 */
export function traffic(port: number, opts: { max?: number; paceMs?: number } = {}) {
  const stats = { ok: 0, failed: 0, errors: [] as string[] };
  const max = opts.max ?? Number.POSITIVE_INFINITY;
  let running = true;
  const loop = (async () => {
    while (running && stats.ok + stats.failed < max) {
      try {
        await fetchText(port, '/');
        stats.ok++;
      } catch (e) {
        stats.failed++;
        if (stats.errors.length < 5) stats.errors.push(String(e));
      }
      if (opts.paceMs) await new Promise((r) => setTimeout(r, opts.paceMs));
    }
  })();
  return { stats, stop: async () => ((running = false), await loop) };
}

/** Publishes a one-module package with its blob (201, or 200 when it is already there). */
export async function publishPackage(registryBase: string, manifest: Record<string, unknown>, blob: Buffer): Promise<void> {
  const digest = (manifest['modules'] as { digest: string }[])[0]!.digest;
  expect([200, 201]).toContain((await http('POST', `${registryBase}/packages`, { package: { manifest }, blobs: { [digest]: blob.toString('base64') } })).status);
}

import { spawn, type ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TEST_ADMIN_TOKEN, TEST_AUTH_HEADER, waitFor } from '@changeover/test-kit';

// Helpers for end-to-end tests that run the built services as child processes and kill them.

/** The repository root (services/rollout/src/testing → ../../../..). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');

export interface Child {
  name: string;
  proc: ChildProcess;
  log: string;
}

/** Starts `node <pkg>/dist/main.js`, its output appended to `<logDir>/<name>.log` (kept for a failure's post-mortem). */
export function startService(name: string, pkg: string, argv: string[], env: Record<string, string>, logDir: string): Child {
  const log = join(logDir, `${name}.log`);
  const out = openSync(log, 'a');
  const proc = spawn(process.execPath, [join(REPO_ROOT, pkg, 'dist/main.js'), ...argv], {
    env: { PATH: process.env['PATH'] ?? '', OTEL_SDK_DISABLED: 'true', CHANGEOVER_ADMIN_TOKEN: TEST_ADMIN_TOKEN, ...env },
    stdio: ['ignore', out, out],
  });
  return { name, proc, log };
}

export const isRunning = (c: Child | undefined) => !!c && c.proc.exitCode === null && c.proc.signalCode === null;

/** SIGKILL, resolved once the process is gone. */
export function kill9(c: Child | undefined): Promise<void> {
  if (!c || !isRunning(c)) return Promise.resolve();
  return new Promise((r) => {
    c.proc.once('exit', () => r());
    c.proc.kill('SIGKILL');
  });
}

/** mulberry32: a small seeded PRNG, so a failing run's kill points can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface HttpAnswer<T> {
  status: number;
  body: T;
}

/** JSON over HTTP as the test admin; a refused connection or a reset (the service was killed) rejects. */
export async function http<T = unknown>(method: string, url: string, body?: unknown, timeoutMs = 30_000): Promise<HttpAnswer<T>> {
  const res = await fetch(url, {
    method,
    headers: { ...TEST_AUTH_HEADER, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
}

/** Waits until GET <base>/health answers 200. */
export async function healthy(base: string, what: string, timeoutMs = 60_000): Promise<void> {
  await waitFor(what, async () => (await fetch(`${base}/health`, { signal: AbortSignal.timeout(2000) }).catch(() => null))?.ok === true, { timeoutMs, intervalMs: 50 });
}

/** Sums the samples of a Prometheus counter whose labels include all of `labels`. */
export function counterValue(metricsText: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of metricsText.split('\n')) {
    if (!line.startsWith(`${name} `) && !line.startsWith(`${name}{`)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { openSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, PermissionViolationError, type NatsConnection } from '@nats-io/transport-node';
import { nodeConnectionOptions } from '@changeover/nats-auth';
import { signManifest, type PackageManifest, type SignedPackage } from '@changeover/contracts';
import { waitFor } from '@changeover/test-kit';

// Helpers for the end-to-end security tests: the built registry and rollout services as child
// processes, publisher keys, REST calls with the bootstrap admin token, confined node connections.

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');

/** The bootstrap admin token the services are started with (the REST API requires a token). */
export const ADMIN_TOKEN = `e2e${randomBytes(24).toString('hex')}`;

export interface ServiceProcess {
  name: string;
  proc: ChildProcess;
  log: string;
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/** Starts `node <pkg>/dist/main.js` with its output in `<logDir>/<name>.log`. */
export function startService(name: string, pkg: string, env: Record<string, string>, logDir: string): ServiceProcess {
  const log = join(logDir, `${name}.log`);
  const out = openSync(log, 'a');
  const proc = spawn(process.execPath, [join(REPO_ROOT, pkg, 'dist/main.js')], { env: { PATH: process.env['PATH'] ?? '', OTEL_SDK_DISABLED: 'true', CHANGEOVER_ADMIN_TOKEN: ADMIN_TOKEN, ...env }, stdio: ['ignore', out, out] });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return {
    name,
    proc,
    log,
    exited,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const killer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

export interface HttpAnswer<T> {
  status: number;
  body: T;
}

/** JSON over HTTP with the admin token. */
export async function http<T = Record<string, unknown>>(method: string, url: string, body?: unknown): Promise<HttpAnswer<T>> {
  const res = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
}

/** Waits until `<base>/health` answers 200 (or the process dies). */
export async function healthy(base: string, svc: ServiceProcess): Promise<void> {
  await waitFor(`${svc.name} healthy`, async () => {
    if (svc.proc.exitCode !== null) throw new Error(`${svc.name} exited: ${readFileSync(svc.log, 'utf8').slice(-3000)}`);
    return (await fetch(`${base}/health`, { signal: AbortSignal.timeout(2000) }).catch(() => null))?.ok === true;
  }, { timeoutMs: 60_000, intervalMs: 100 });
}

export interface Publisher {
  keyId: string;
  publicPem: string;
  privateKey: KeyObject;
  sign(m: PackageManifest): SignedPackage;
}

export function publisher(keyId: string): Publisher {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return { keyId, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(), privateKey, sign: (m) => signManifest(m, privateKey, keyId) };
}

/** The trust-roots document: active keys by PEM, retired ones as `{ key, retired: true }`. */
export function trustRoots(active: Publisher[], retired: Publisher[] = []): string {
  return JSON.stringify(Object.fromEntries([...active.map((p) => [p.keyId, p.publicPem]), ...retired.map((p) => [p.keyId, { key: p.publicPem, retired: true }])]));
}

/** A connection with a node's issued credentials that records the server's permission errors. */
export async function connectAsNode(url: string, creds: string, nodeId: string): Promise<{ nc: NatsConnection; violations: PermissionViolationError[] }> {
  const nc = await connect({ servers: url, reconnect: false, ...nodeConnectionOptions(creds, nodeId) });
  const violations: PermissionViolationError[] = [];
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'error' && s.error instanceof PermissionViolationError) violations.push(s.error);
  })();
  return { nc, violations };
}

/** The package names and versions active on a real agent (its state file). */
export function activePackages(stateDir: string): string[] {
  try {
    const doc = JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')) as { state: { active: { manifest: { name: string; version: string } }[] } };
    return doc.state.active.map((p) => `${p.manifest.name}@${p.manifest.version}`).sort();
  } catch {
    return [];
  }
}

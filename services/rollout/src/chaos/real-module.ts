import { createHash, generateKeyPairSync } from 'node:crypto';
import { get } from 'node:http';
import { signManifest, type PackageManifest, type SignedPackage } from '@changeover/contracts';

// A real module for real node agents: a small HTTP service that answers its version, served from the
// listening socket the agent owns and hands over (fd 3), so a changeover drops no request.

const serviceSource = (name: string, version: string) => `'use strict';
const http = require('node:http');
const server = http.createServer((req, res) => {
  if (req.url === '/health') { res.end('ok'); return; }
  res.end(${JSON.stringify(`${name}@${version}`)});
});
const fds = Number(process.env.LISTEN_FDS || 0);
const servers = [server];
if (fds >= 1) server.listen({ fd: 3 }); else server.listen(Number(process.env.PORT || 0), '127.0.0.1');
if (fds >= 2) servers.push(http.createServer(server.listeners('request')[0]).listen({ fd: 4 }));
process.on('SIGTERM', () => { for (const s of servers) s.close(); setTimeout(() => process.exit(0), 100).unref(); });
`;

export interface Publisher {
  keyId: string;
  /** AGENT_TRUST_ROOTS / REGISTRY_TRUST_ROOTS. */
  trustRoots: string;
  sign(manifest: PackageManifest): SignedPackage;
}

/** A fresh Ed25519 publisher key that the registry and the agents trust. */
export function publisher(keyId = 'chaos-publisher'): Publisher {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  return { keyId, trustRoots: JSON.stringify({ [keyId]: publicKey.export({ type: 'spki', format: 'pem' }).toString() }), sign: (m) => signManifest(m, pem, keyId) };
}

/** Package `name@version`: one runnable module listening on `port`, with an HTTP health check; the body the POST /packages takes. */
export function servicePackage(signer: Publisher, name: string, version: string, port: number): { package: SignedPackage; blobs: Record<string, string> } {
  const bytes = Buffer.from(serviceSource(name, version));
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const manifest: PackageManifest = {
    name,
    version,
    description: `${name} ${version}`,
    modules: [
      {
        name,
        version,
        processorType: 'any',
        size: bytes.length,
        digest,
        dependsOn: [],
        requires: {},
        run: { command: 'node', args: ['{module}'], env: {}, listen: { port, host: '127.0.0.1' }, healthCheck: { type: 'http', path: '/health', timeoutMs: 5000 }, restartOnChange: false, stopTimeoutMs: 5000 },
      },
    ],
    requires: {},
    provides: [],
    consumes: [],
  };
  return { package: signer.sign(manifest), blobs: { [digest]: bytes.toString('base64') } };
}

/** One GET over loopback without keep-alive: the body of a 200, anything else an error. */
function fetchText(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`status ${res.statusCode}`))));
    })
      .on('timeout', function (this: { destroy(e: Error): void }) {
        this.destroy(new Error('timed out after 5000 ms'));
      })
      .on('error', reject);
  });
}

/** Two request loops to the module until stopped; every failed request is counted and kept (the first 20). */
export function probe(port: number) {
  const stats = { ok: 0, failed: 0, errors: [] as string[], bodies: new Map<string, number>() };
  let running = true;
  const loop = async () => {
    while (running) {
      try {
        const body = await fetchText(port, '/');
        stats.bodies.set(body, (stats.bodies.get(body) ?? 0) + 1);
        stats.ok++;
      } catch (e) {
        stats.failed++;
        if (stats.errors.length < 20) stats.errors.push(`${new Date().toISOString()} ${String(e)}`);
      }
      // Continuous, yet leaving the loaded machine's cores to the processes under test.
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const loops = [loop(), loop()];
  return {
    stats,
    fetch: () => fetchText(port, '/'),
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

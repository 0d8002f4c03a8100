import { createHash, generateKeyPairSync } from 'node:crypto';
import type { Module, PackageManifest } from '@changeover/contracts';

/** The demo's packages: a small HTTP service whose evaluate hook vetoes where a `veto` file exists. */

// Runs as a plain CommonJS script from the agent's module store. `evaluate` is the hook mode.
const serviceSource = (version: string) => `'use strict';
const fs = require('node:fs');
const http = require('node:http');
if (process.argv[2] === 'evaluate') {
  if (fs.existsSync('veto')) { process.stdout.write(fs.readFileSync('veto', 'utf8')); process.exit(1); }
  process.exit(0);
}
const server = http.createServer((req, res) => {
  if (req.url === '/health') { res.end('ok'); return; }
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ service: 'demo-api', version: ${JSON.stringify(version)} }));
});
// The agent owns the listening socket and hands it over as fd 3, so a changeover drops nothing;
// fd 4, when given, is this process's private health socket.
const fds = Number(process.env.LISTEN_FDS || 0);
const servers = [server];
if (fds >= 1) server.listen({ fd: 3 }); else server.listen(Number(process.env.PORT || 0), '127.0.0.1');
if (fds >= 2) servers.push(http.createServer(server.listeners('request')[0]).listen({ fd: 4 }));
process.on('SIGTERM', () => { for (const s of servers) s.close(); setTimeout(() => process.exit(0), 100).unref(); });
`;

const assetsSource = '/* demo-assets: static content shared by every version */\n' + 'x'.repeat(4096) + '\n';

export interface DemoBlob {
  digest: string;
  bytes: Buffer;
}

function blob(text: string): DemoBlob {
  const bytes = Buffer.from(text);
  return { digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, bytes };
}

export interface DemoPackage {
  manifest: PackageManifest;
  blobs: DemoBlob[];
}

/** Port 0: every node's agent binds its own port (several demo agents share one host). */
export function demoPackage(version: string, port = 0): DemoPackage {
  const service = blob(serviceSource(version));
  const assets = blob(assetsSource);
  const modules: Module[] = [
    {
      name: 'demo-api',
      version,
      processorType: 'any',
      size: service.bytes.length,
      digest: service.digest,
      dependsOn: ['demo-assets'],
      requires: {},
      run: {
        command: 'node',
        args: ['{module}'],
        env: {},
        listen: { port, host: '127.0.0.1' },
        healthCheck: { type: 'http', path: '/health', timeoutMs: 5000 },
        hooks: { evaluate: ['node', '{module}', 'evaluate'] },
        restartOnChange: false,
        stopTimeoutMs: 5000,
      },
    },
    { name: 'demo-assets', version: '1.0.0', processorType: 'any', size: assets.bytes.length, digest: assets.digest, dependsOn: [], requires: {} },
  ];
  return {
    manifest: {
      name: 'demo-api',
      version,
      description: 'Changeover demo service',
      modules,
      requires: {},
      provides: [`demo-api@${version}`],
      consumes: [],
    },
    blobs: [service, assets],
  };
}

/** A publisher key for the demo: the registry and the agents trust it. */
export function demoKey(): { keyId: string; privateKeyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    keyId: 'demo-publisher',
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

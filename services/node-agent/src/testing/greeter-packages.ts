import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { signManifest, type PackageManifest, type SignedPackage } from '@changeover/contracts';
import { AGENT_SDK_MAIN, FIXTURES } from './agent-harness.js';
import { manifestOf, moduleOf } from './packages.js';

/** The greeter service (v1, v2, a broken v3) and its consumer, signed by a test publisher key. */
export function greeterPackages(port: number, changesFile: string) {
  const template = readFileSync(join(FIXTURES, 'greeter.cjs'), 'utf8');
  const svc = {
    v1: template,
    v2: template.replace("const VERSION = 'v1';", "const VERSION = 'v2';"),
    v3: template.replace("const VERSION = 'v1';", "const VERSION = 'v3';").replace('const BROKEN = false;', 'const BROKEN = true;'),
  };
  const assets = readFileSync(join(FIXTURES, 'assets.txt'), 'utf8');
  const consumer = readFileSync(join(FIXTURES, 'consumer.cjs'), 'utf8');
  const run = { command: 'node', args: ['{module}'], env: {}, listen: { port, host: '127.0.0.1' }, healthCheck: { type: 'http' as const, path: '/health', timeoutMs: 2000 }, restartOnChange: false, stopTimeoutMs: 10_000 };
  const greeter = (version: string, code: string, api: string): PackageManifest =>
    manifestOf('greeter', version, [moduleOf('greeter-svc', version, code, { run }), moduleOf('greeter-assets', '1.0.0', assets)], { provides: [`greeter-api@${api}`] });
  const client = manifestOf(
    'client',
    '1.0.0',
    [
      moduleOf('client-proc', '1.0.0', consumer, {
        dependsOn: ['greeter-svc'],
        run: { command: 'node', args: ['{module}'], env: { AGENT_SDK: AGENT_SDK_MAIN, CHANGES_FILE: changesFile, CONSUMER_VETO: 'busy-window', GREETER_URL: `http://127.0.0.1:${port}` }, restartOnChange: false, stopTimeoutMs: 5000 },
      }),
    ],
    { consumes: ['greeter-api@^1'] },
  );
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const rogue = generateKeyPairSync('ed25519');
  const sign = (m: PackageManifest): SignedPackage => signManifest(m, privateKey, 'publisher');
  return {
    blobs: { ...svc, assets, consumer },
    v1: greeter('1.0.0', svc.v1, '1.0.0'),
    v2: greeter('2.0.0', svc.v2, '1.1.0'),
    v3: greeter('3.0.0', svc.v3, '1.2.0'),
    /** Breaks its consumer's API (greeter-api@2). */
    v4: greeter('4.0.0', svc.v2.replace("'v2'", "'v4'"), '2.0.0'),
    client,
    sign,
    signRogue: (m: PackageManifest): SignedPackage => signManifest(m, rogue.privateKey, 'publisher'),
    trustRoots: JSON.stringify({ publisher: publicKey.export({ format: 'pem', type: 'spki' }).toString() }),
  };
}

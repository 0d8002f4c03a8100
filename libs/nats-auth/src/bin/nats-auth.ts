#!/usr/bin/env node
import { readFileSync, writeFileSync } from 'node:fs';
import { authorityPublicKeys, createAuthority, exportAuthority, loadAuthority } from '../authority/authority.js';
import { mintServiceCredentials } from '../credentials/mint.js';
import { serverConfig } from '../server/server-config.js';

// Operator tool: create the NATS authority, print the nats-server configuration block, mint a
// service's credentials. Node credentials come from the registry at enrollment.

const USAGE = `usage: changeover-nats-auth <command>
  init --out FILE                                   create an authority (four nkey seeds: a secret), mode 0600
  server-config --authority FILE --resolver-dir DIR print the operator-mode block for nats-server.conf
  service-creds --authority FILE --service NAME     print a .creds file for registry|rollout|notifier|relay|cli
  public-keys --authority FILE                      print the public keys (safe to share)`;

function flags(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]!;
    const value = argv[i + 1];
    if (!name.startsWith('--') || value === undefined) throw new Error(`bad argument ${name}\n${USAGE}`);
    out[name.slice(2)] = value;
  }
  return out;
}

function need(f: Record<string, string>, name: string): string {
  const v = f[name];
  if (!v) throw new Error(`--${name} is required\n${USAGE}`);
  return v;
}

async function main(argv: string[]): Promise<string> {
  const [command, ...rest] = argv;
  const f = flags(rest);
  const authority = () => loadAuthority(readFileSync(need(f, 'authority'), 'utf8'));
  switch (command) {
    case 'init': {
      const out = need(f, 'out');
      writeFileSync(out, `${JSON.stringify(exportAuthority(createAuthority()), null, 2)}\n`, { mode: 0o600, flag: 'wx' });
      return `authority written to ${out} (keep it secret: REGISTRY_NATS_AUTHORITY)\n`;
    }
    case 'server-config':
      return serverConfig(authority(), { resolverDir: need(f, 'resolver-dir') });
    case 'service-creds':
      return (await mintServiceCredentials(authority(), need(f, 'service'))).creds;
    case 'public-keys':
      return `${JSON.stringify(authorityPublicKeys(authority()), null, 2)}\n`;
    default:
      throw new Error(USAGE);
  }
}

main(process.argv.slice(2)).then(
  (text) => process.stdout.write(text),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(2);
  },
);

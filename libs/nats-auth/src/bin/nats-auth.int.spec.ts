import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from '@jest/globals';
import { connect } from '@nats-io/transport-node';
import { startNats } from '@changeover/test-kit';
import { serviceConnectionOptions } from '../connect/node-connect.js';

const BIN = fileURLToPath(new URL('../../dist/bin/nats-auth.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'nats-auth-bin-'));
const run = (...args: string[]) => execFileSync(process.execPath, [BIN, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('changeover-nats-auth', () => {
  it('creates an authority, configures a server that trusts it, and mints a service user that connects', async () => {
    const file = join(dir, 'authority.json');
    run('init', '--out', file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // Never overwrites an existing authority.
    expect(() => run('init', '--out', file)).toThrow();
    mkdirSync(join(dir, 'jwt'));
    const nats = await startNats(run('server-config', '--authority', file, '--resolver-dir', join(dir, 'jwt')));
    try {
      const creds = run('service-creds', '--authority', file, '--service', 'rollout');
      writeFileSync(join(dir, 'rollout.creds'), creds);
      const nc = await connect({ servers: nats.url, reconnect: false, ...serviceConnectionOptions(creds) });
      await nc.flush();
      await nc.close();
      // Without credentials the server refuses (an authorization error, or the socket closed under it).
      await expect(connect({ servers: nats.url, reconnect: false, timeout: 2000 })).rejects.toThrow();
      expect(JSON.parse(run('public-keys', '--authority', file))).toMatchObject({ operator: expect.stringMatching(/^O/), account: expect.stringMatching(/^A/) });
      expect(() => run('service-creds', '--authority', file, '--service', 'evil')).toThrow(/not one of/);
    } finally {
      await nats.stop();
    }
  });
});

import { describe, expect, it } from '@jest/globals';
import { decode, parseCreds, type Account, type User } from '@nats-io/jwt';
import { isChangeoverError } from '@changeover/contracts';
import { authorityPublicKeys, createAuthority, exportAuthority, loadAuthority } from '../authority/authority.js';
import { serverConfig } from '../server/server-config.js';
import { mintNodeCredentials, mintServiceCredentials, revokeNode } from './mint.js';

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => { throw new Error('expected a rejection'); }, (e: unknown) => e);
}

describe('authority', () => {
  it('round-trips through its stored form, as an object and as JSON', () => {
    const a = createAuthority();
    const stored = exportAuthority(a);
    expect(authorityPublicKeys(loadAuthority(stored))).toEqual(authorityPublicKeys(a));
    expect(authorityPublicKeys(loadAuthority(JSON.stringify(stored)))).toEqual(authorityPublicKeys(a));
  });

  it('refuses a malformed authority with VALIDATION_FAILED and never echoes a seed', () => {
    const stored = exportAuthority(createAuthority());
    const swapped = { ...stored, operatorSeed: stored.accountSeed };
    for (const bad of ['{', JSON.stringify({ version: 1 }), { ...stored, accountSeed: 'SAnot-a-seed' }, swapped]) {
      let err: unknown;
      try {
        loadAuthority(bad as never);
      } catch (e) {
        err = e;
      }
      expect(isChangeoverError(err, 'VALIDATION_FAILED')).toBe(true);
      expect((err as Error).message).not.toContain(stored.accountSeed);
    }
  });
});

describe('mintNodeCredentials', () => {
  it('mints creds whose user JWT carries the node permissions, signed by the user signer for the account', async () => {
    const a = createAuthority();
    const keys = authorityPublicKeys(a);
    const c = await mintNodeCredentials(a, { nodeId: 'node-a', classId: 'web' });
    const parsed = await parseCreds(new TextEncoder().encode(c.creds));
    expect(parsed.jwt).toBe(c.jwt);
    expect(parsed.aid).toBe(keys.account);
    const claims = decode<User>(c.jwt);
    expect(claims.sub).toBe(c.userPublicKey);
    expect(claims.iss).toBe(keys.userSigner);
    expect(claims.name).toBe('node:node-a');
    expect(claims.nats.pub?.allow).toContain('changeover.agent.node-a.>');
    expect(claims.nats.sub?.allow).toEqual(['changeover.node.node-a.>', 'changeover.class.web.>', '_INBOX.node.node-a.>']);
    expect(claims.nats.resp).toEqual({ max: 1, ttl: 120_000_000_000 });
    expect(c.inboxPrefix).toBe('_INBOX.node.node-a');
  });

  it('gives every enrollment a new key', async () => {
    const a = createAuthority();
    const one = await mintNodeCredentials(a, { nodeId: 'n1', classId: 'c' });
    const two = await mintNodeCredentials(a, { nodeId: 'n1', classId: 'c' });
    expect(one.userPublicKey).not.toBe(two.userPublicKey);
  });

  it('refuses unsafe ids with INVALID_ID', async () => {
    const a = createAuthority();
    expect(isChangeoverError(await rejection(mintNodeCredentials(a, { nodeId: 'a.>', classId: 'c' })), 'INVALID_ID')).toBe(true);
    expect(isChangeoverError(await rejection(mintNodeCredentials(a, { nodeId: 'a', classId: '*' })), 'INVALID_ID')).toBe(true);
    expect(isChangeoverError(await rejection(mintServiceCredentials(a, 'evil.>')), 'INVALID_ID')).toBe(true);
  });
});

describe('mintServiceCredentials', () => {
  it('mints an unrestricted user of the account', async () => {
    const c = await mintServiceCredentials(createAuthority(), 'registry');
    const claims = decode<User>(c.jwt);
    expect(claims.name).toBe('service:registry');
    expect(claims.nats.pub).toBeUndefined();
    expect(claims.nats.sub).toBeUndefined();
  });
});

describe('revokeNode', () => {
  it('puts every revocation into one account JWT signed by the operator', async () => {
    const a = createAuthority();
    const n1 = await mintNodeCredentials(a, { nodeId: 'n1', classId: 'c' });
    const n2 = await mintNodeCredentials(a, { nodeId: 'n2', classId: 'c' });
    const first = await revokeNode(a, { nodeId: 'n1', userPublicKey: n1.userPublicKey }, { now: 1_700_000_000_500 });
    const second = await revokeNode(a, { nodeId: 'n2', userPublicKey: n2.userPublicKey }, { revoked: first.revocations, now: 1_700_000_100_000 });
    expect(second.revocations).toHaveLength(2);
    const claims = decode<Account>(second.accountJwt);
    expect(claims.iss).toBe(authorityPublicKeys(a).operator);
    expect(claims.nats.revocations).toEqual({ [n1.userPublicKey]: 1_700_000_000, [n2.userPublicKey]: 1_700_000_100 });
    expect(claims.nats.signing_keys).toEqual([authorityPublicKeys(a).userSigner]);
  });

  it('refuses an unsafe node id or a key that is not a user key', async () => {
    const a = createAuthority();
    const n1 = await mintNodeCredentials(a, { nodeId: 'n1', classId: 'c' });
    expect(isChangeoverError(await rejection(revokeNode(a, { nodeId: 'n 1', userPublicKey: n1.userPublicKey })), 'INVALID_ID')).toBe(true);
    expect(isChangeoverError(await rejection(revokeNode(a, { nodeId: 'n1', userPublicKey: authorityPublicKeys(a).account })), 'VALIDATION_FAILED')).toBe(true);
  });
});

describe('serverConfig', () => {
  it('trusts the operator, names the system account and preloads both accounts for the full resolver', async () => {
    const a = createAuthority();
    const keys = authorityPublicKeys(a);
    const conf = await serverConfig(a, { resolverDir: '/var/lib/nats/jwt' });
    expect(conf).toMatch(/^operator: eyJ/m);
    expect(conf).toContain(`system_account: ${keys.systemAccount}`);
    expect(conf).toContain('resolver: { type: full, dir: "/var/lib/nats/jwt"');
    expect(conf).toContain(`  ${keys.account}: eyJ`);
    expect(conf).toContain(`  ${keys.systemAccount}: eyJ`);
    expect(conf).not.toContain(exportAuthority(a).operatorSeed);
  });
});

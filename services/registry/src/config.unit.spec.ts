import { describe, expect, it } from '@jest/globals';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAuthority, exportAuthority } from '@changeover/nats-auth';
import { loadConfig } from './config.js';

const pem = () => generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();

describe('loadConfig', () => {
  it('reads NATS_URL as a server list and NATS_STREAM_REPLICAS, naming a bad list entry', () => {
    expect(loadConfig({ NATS_URL: 'nats://n1:4222, nats://n2:4222,nats://n3:4222', NATS_STREAM_REPLICAS: '3' })).toMatchObject({ natsServers: ['nats://n1:4222', 'nats://n2:4222', 'nats://n3:4222'], streamReplicas: 3 });
    expect(loadConfig({})).toMatchObject({ natsServers: ['nats://127.0.0.1:4222'], streamReplicas: 1 });
    expect(() => loadConfig({ NATS_URL: 'nats://n1:4222,,nats://n3:4222' })).toThrow(/NATS_URL: .*entry 2 "" is empty/);
    expect(() => loadConfig({ NATS_STREAM_REPLICAS: '6' })).toThrow(/NATS_STREAM_REPLICAS/);
  });

  it('has a default for every variable', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ httpPort: 7101, requireSignatures: false, retainVersions: 0, requireEnrollment: false, relay: true, staleAfterMs: 30_000 });
  });

  it('names every bad variable', () => {
    expect(() => loadConfig({ REGISTRY_HTTP_PORT: 'web', REGISTRY_REQUIRE_ENROLLMENT: 'maybe' })).toThrow(/REGISTRY_HTTP_PORT.*REGISTRY_REQUIRE_ENROLLMENT/);
  });

  it('requires signatures by default once trust roots are configured, inline or from a file', () => {
    expect(loadConfig({ REGISTRY_TRUST_ROOTS: JSON.stringify({ release: pem() }) }).requireSignatures).toBe(true);
    const file = join(mkdtempSync(join(tmpdir(), 'roots-')), 'roots.json');
    writeFileSync(file, JSON.stringify({ a: pem(), b: pem() }));
    const c = loadConfig({ REGISTRY_TRUST_ROOTS: file, REGISTRY_REQUIRE_SIGNATURES: 'false' });
    expect(Object.keys(c.trustRoots)).toEqual(['a', 'b']);
    expect(c.requireSignatures).toBe(false);
  });

  it('reads retired keys and their policy, the NATS authority and the service creds file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'registry-nats-'));
    const creds = join(dir, 'registry.creds');
    writeFileSync(creds, '-----BEGIN NATS USER JWT-----\nx\n------END NATS USER JWT------\n-----BEGIN USER NKEY SEED-----\nSU\n------END USER NKEY SEED------\n');
    const authority = JSON.stringify(exportAuthority(createAuthority()));
    const c = loadConfig({ REGISTRY_TRUST_ROOTS: JSON.stringify({ old: { key: pem(), retired: true }, now: pem() }), REGISTRY_RETIRED_KEYS: 'refuse', NATS_CREDS: creds, REGISTRY_NATS_AUTHORITY: authority, REGISTRY_NODE_CREDS_TTL_S: '86400' });
    expect(c).toMatchObject({ retiredKeys: ['old'], retiredKeyPolicy: 'refuse', natsCreds: creds, nodeCredsTtlS: 86400 });
    expect(c.natsAuthority).toBeDefined();
    expect(loadConfig({}).natsAuthority).toBeUndefined();
    expect(loadConfig({}).retiredKeyPolicy).toBe('accept');
  });

  it('refuses a bad retired-key policy, an unreadable creds file and a malformed authority without echoing a seed', () => {
    expect(() => loadConfig({ REGISTRY_RETIRED_KEYS: 'maybe' })).toThrow(/REGISTRY_RETIRED_KEYS/);
    expect(() => loadConfig({ NATS_CREDS: '/nonexistent/registry.creds' })).toThrow(/NATS_CREDS/);
    const stored = exportAuthority(createAuthority());
    let message = '';
    try {
      loadConfig({ REGISTRY_NATS_AUTHORITY: JSON.stringify({ ...stored, operatorSeed: stored.accountSeed }) });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/REGISTRY_NATS_AUTHORITY/);
    expect(message).not.toContain(stored.accountSeed);
    expect(() => loadConfig({ REGISTRY_TRUST_ROOTS: JSON.stringify({ old: { key: pem(), retired: 'yes' } }) })).toThrow(/REGISTRY_TRUST_ROOTS: key old/);
  });

  it('refuses required signatures without trust roots, and unreadable trust roots', () => {
    expect(() => loadConfig({ REGISTRY_REQUIRE_SIGNATURES: 'true' })).toThrow(/needs REGISTRY_TRUST_ROOTS/);
    expect(() => loadConfig({ REGISTRY_TRUST_ROOTS: '/nonexistent/roots.json' })).toThrow(/REGISTRY_TRUST_ROOTS/);
  });
});

import { describe, expect, it } from '@jest/globals';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from './config.js';

const pem = () => generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();

describe('loadConfig', () => {
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

  it('refuses required signatures without trust roots, and unreadable trust roots', () => {
    expect(() => loadConfig({ REGISTRY_REQUIRE_SIGNATURES: 'true' })).toThrow(/needs REGISTRY_TRUST_ROOTS/);
    expect(() => loadConfig({ REGISTRY_TRUST_ROOTS: '/nonexistent/roots.json' })).toThrow(/REGISTRY_TRUST_ROOTS/);
  });
});

import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { assertTrustedSignature, isChangeoverError, parseSubject, parseTrustConfig, signManifest, subjects, verifyManifest, type PackageManifest } from './index.js';

const manifest: PackageManifest = {
  name: 'app',
  version: '1.0.0',
  description: '',
  modules: [{ name: 'app', version: '1.0.0', processorType: 'any', size: 1, digest: `sha256:${'a'.repeat(64)}`, dependsOn: [], requires: {} }],
  requires: {},
  provides: [],
  consumes: [],
};
const key = () => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return { pub: publicKey.export({ type: 'spki', format: 'pem' }).toString(), priv: privateKey };
};

describe('trust roots with key rotation', () => {
  const old = key();
  const current = key();
  const next = key();
  const { roots, retired } = parseTrustConfig({ 'release-2025': { key: old.pub, retired: true }, 'release-2026': current.pub, 'release-2027': { key: next.pub } }, 'TRUST');

  it('reads active and retired keys', () => {
    expect(Object.keys(roots).sort()).toEqual(['release-2025', 'release-2026', 'release-2027']);
    expect(retired).toEqual(['release-2025']);
  });

  it('verifies every active key, and a retired key only as the policy says', () => {
    expect(verifyManifest(signManifest(manifest, current.priv, 'release-2026'), roots, { retired })).toEqual({ status: 'valid', keyId: 'release-2026' });
    expect(verifyManifest(signManifest(manifest, next.priv, 'release-2027'), roots, { retired, retiredPolicy: 'refuse' })).toEqual({ status: 'valid', keyId: 'release-2027' });
    const byOld = signManifest(manifest, old.priv, 'release-2025');
    expect(verifyManifest(byOld, roots, { retired, retiredPolicy: 'accept' })).toEqual({ status: 'valid', keyId: 'release-2025', retired: true });
    expect(verifyManifest(byOld, roots, { retired, retiredPolicy: 'refuse' })).toEqual({ status: 'retired-key', keyId: 'release-2025' });
    expect(assertTrustedSignature(byOld, roots, { retired })).toEqual({ keyId: 'release-2025', retired: true });
    let err: unknown;
    try {
      assertTrustedSignature(byOld, roots, { retired, retiredPolicy: 'refuse' });
    } catch (e) {
      err = e;
    }
    expect(isChangeoverError(err, 'UNTRUSTED_KEY')).toBe(true);
  });

  it('never lets a retired key vouch for a tampered manifest', () => {
    const byOld = signManifest(manifest, old.priv, 'release-2025');
    expect(verifyManifest({ ...byOld, manifest: { ...manifest, description: 'x' } }, roots, { retired }).status).toBe('invalid');
  });

  it.each([[[]], [{ a: 1 }], [{ a: { key: old.pub, retired: 'yes' } }], [{ a: { key: old.pub, until: 1 } }], [{ a: 'bm90IGEga2V5' }], [null]])('refuses the malformed document %j with VALIDATION_FAILED', (doc) => {
    let err: unknown;
    try {
      parseTrustConfig(doc, 'TRUST');
    } catch (e) {
      err = e;
    }
    expect(isChangeoverError(err, 'VALIDATION_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(/^TRUST: /);
  });
});

describe('agent request subjects', () => {
  it('builds and parses a node request under its own agent subject', () => {
    expect(subjects.agentRequest('n-1', 'get-packages')).toBe('changeover.agent.n-1.get-packages');
    expect(subjects.agentRequestAny('get-packages')).toBe('changeover.agent.*.get-packages');
    expect(parseSubject('changeover.agent.n-1.get-packages')).toEqual({ kind: 'agent-request', nodeId: 'n-1', op: 'get-packages' });
    expect(() => subjects.agentRequest('n.1', 'get-packages')).toThrow();
  });
});

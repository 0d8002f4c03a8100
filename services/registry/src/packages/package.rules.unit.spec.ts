import { describe, expect, it } from '@jest/globals';
import { generateKeyPairSync } from 'node:crypto';
import { signManifest, verifyManifest, type PackageManifest } from '@changeover/contracts';
import { assertNotNewFromRetiredKey, checkManifest, contentHash, judgeSignature, prunableVersions, referencedBlobs } from './package.rules.js';
import { parseTrustConfigSpec, parseTrustRoots } from '../config.js';

const manifest = (over: Partial<PackageManifest> = {}): PackageManifest => ({
  name: 'billing',
  version: '1.2.3',
  description: '',
  modules: [{ name: 'server', version: '1.2.3', processorType: 'x86_64', size: 10, digest: `sha256:${'a'.repeat(64)}`, dependsOn: [], requires: {} }],
  requires: { auth: '^1.0.0' },
  provides: ['billing-api@1.2.0'],
  consumes: ['auth-api@^1'],
  ...over,
});

function keys() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { priv: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), pub: publicKey.export({ type: 'spki', format: 'pem' }).toString(), raw: publicKey.export({ format: 'der', type: 'spki' }).subarray(12).toString('base64') };
}

describe('checkManifest', () => {
  it('accepts a well-formed manifest', () => {
    expect(() => checkManifest(manifest(), 100)).not.toThrow();
  });
  it('refuses a bad semver range in requires, naming the field', () => {
    expect(() => checkManifest(manifest({ requires: { auth: '>>1' } }), 100)).toThrow(/requires\.auth/);
  });
  it('refuses a bad range in consumes', () => {
    expect(() => checkManifest(manifest({ consumes: ['auth-api@^^1'] }), 100)).toThrow(/consumes\.0/);
  });
  it('refuses two variants of a module for the same processor type and requirements', () => {
    const m = manifest();
    expect(() => checkManifest({ ...m, modules: [m.modules[0]!, { ...m.modules[0]!, digest: `sha256:${'b'.repeat(64)}` }] }, 100)).toThrow(/appears twice/);
    const gpu = { ...m.modules[0]!, requires: { labels: { gpu: 'true' } } };
    expect(() => checkManifest({ ...m, modules: [gpu, { ...gpu, digest: `sha256:${'b'.repeat(64)}` }] }, 100)).toThrow(/for x86_64 with requires \{"labels":\{"gpu":"true"\}\} appears twice/);
  });
  it('accepts variants of a module that differ by requirements only (a GPU build beside a plain one)', () => {
    const m = manifest();
    const gpu = { ...m.modules[0]!, digest: `sha256:${'b'.repeat(64)}`, requires: { labels: { gpu: 'true' } } };
    const windows = { ...m.modules[0]!, digest: `sha256:${'c'.repeat(64)}`, requires: { os: ['windows' as const] } };
    expect(() => checkManifest({ ...m, modules: [windows, gpu, m.modules[0]!] }, 100)).not.toThrow();
  });
  it('refuses a module declared over the size limit with TOO_LARGE', () => {
    expect(() => checkManifest(manifest(), 9)).toThrow(expect.objectContaining({ code: 'TOO_LARGE' }));
  });
  it('refuses one digest declared with two sizes', () => {
    const m = manifest();
    expect(() => referencedBlobs({ ...m, modules: [m.modules[0]!, { ...m.modules[0]!, processorType: 'arm64', size: 11 }] })).toThrow(/sizes 10 and 11/);
  });
});

describe('contentHash', () => {
  it('does not depend on key order', () => {
    const m = manifest();
    const reordered = Object.fromEntries(Object.entries(m).reverse()) as PackageManifest;
    expect(contentHash(reordered)).toBe(contentHash(m));
    expect(contentHash({ ...m, description: 'x' })).not.toBe(contentHash(m));
  });
});

describe('signatures', () => {
  const k = keys();
  const roots = parseTrustRoots(JSON.stringify({ release: k.pub }));

  it('verifies a signature made with the matching key, from PEM or raw base64 trust roots', () => {
    const signed = signManifest(manifest(), k.priv, 'release');
    expect(verifyManifest(signed, roots)).toEqual({ status: 'valid', keyId: 'release' });
    expect(verifyManifest(signed, parseTrustRoots(JSON.stringify({ release: k.raw })))).toEqual({ status: 'valid', keyId: 'release' });
  });

  it('detects a changed manifest, an unknown key and a missing signature', () => {
    const signed = signManifest(manifest(), k.priv, 'release');
    expect(verifyManifest({ ...signed, manifest: manifest({ description: 'tampered' }) }, roots).status).toBe('invalid');
    expect(verifyManifest(signManifest(manifest(), k.priv, 'other'), roots).status).toBe('untrusted-key');
    expect(verifyManifest({ manifest: manifest() }, roots).status).toBe('unsigned');
  });

  it('judges by policy: required → only valid passes; optional → unsigned allowed, a bad signature still refused', () => {
    const good = signManifest(manifest(), keys().priv, 'release');
    expect(() => judgeSignature({ manifest: manifest() }, { trustRoots: roots, requireSignatures: true })).toThrow(expect.objectContaining({ code: 'SIGNATURE_INVALID' }));
    expect(() => judgeSignature(good, { trustRoots: roots, requireSignatures: true })).toThrow(expect.objectContaining({ code: 'SIGNATURE_INVALID' }));
    expect(judgeSignature({ manifest: manifest() }, { trustRoots: roots, requireSignatures: false })).toEqual({ verdict: 'unsigned', signedBy: null });
    expect(() => judgeSignature(good, { trustRoots: roots, requireSignatures: false })).toThrow(expect.objectContaining({ code: 'SIGNATURE_INVALID' }));
    expect(judgeSignature(good, { trustRoots: {}, requireSignatures: false })).toEqual({ verdict: 'not-checked', signedBy: 'release' });
  });

  it('rotation: a retired key still vouches for its packages under accept, is refused under refuse, and never signs a new version', () => {
    const old = keys();
    const current = keys();
    const rotated = parseTrustConfigSpec(JSON.stringify({ r2025: { key: old.pub, retired: true }, r2026: current.pub }));
    expect(rotated.retired).toEqual(['r2025']);
    const policy = (retiredKeyPolicy: 'accept' | 'refuse') => ({ trustRoots: rotated.roots, requireSignatures: true, retiredKeys: rotated.retired, retiredKeyPolicy });
    const byOld = signManifest(manifest(), old.priv, 'r2025');
    const judged = judgeSignature(byOld, policy('accept'));
    expect(judged).toEqual({ verdict: 'valid', signedBy: 'r2025', retired: true });
    expect(() => assertNotNewFromRetiredKey('billing@1.2.3', judged)).toThrow(expect.objectContaining({ code: 'UNTRUSTED_KEY', message: expect.stringMatching(/retired key r2025/) }));
    expect(() => judgeSignature(byOld, policy('refuse'))).toThrow(expect.objectContaining({ code: 'UNTRUSTED_KEY' }));
    // Optional signatures: a present one by a retired key is judged the same way.
    expect(() => judgeSignature(byOld, { ...policy('refuse'), requireSignatures: false })).toThrow(expect.objectContaining({ code: 'UNTRUSTED_KEY' }));
    const byCurrent = judgeSignature(signManifest(manifest(), current.priv, 'r2026'), policy('refuse'));
    expect(byCurrent).toEqual({ verdict: 'valid', signedBy: 'r2026' });
    expect(() => assertNotNewFromRetiredKey('billing@1.2.3', byCurrent)).not.toThrow();
  });

  it('refuses a trust root that is not an Ed25519 key', () => {
    expect(() => parseTrustRoots(JSON.stringify({ release: 'bm90IGEga2V5' }))).toThrow(/trust root release/);
  });
});

describe('retention', () => {
  it('keeps every version when retention is off', () => {
    expect(prunableVersions(['1.0.0', '2.0.0'], 0, new Set())).toEqual([]);
  });
  it('prunes beyond the newest N by semver, never a protected version', () => {
    expect(prunableVersions(['1.0.0', '1.10.0', '1.2.0', '0.9.0', '2.0.0-rc.1'], 2, new Set(['0.9.0']))).toEqual(['1.2.0', '1.0.0']);
  });
});

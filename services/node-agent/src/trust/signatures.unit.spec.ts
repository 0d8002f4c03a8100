import { describe, expect, it } from '@jest/globals';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isChangeoverError, signManifest } from '@changeover/contracts';
import { manifestOf, moduleOf } from '../testing/packages.js';
import { loadTrustRoots, signatureVerifier } from './signatures.js';

const key = () => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return { pub: publicKey.export({ type: 'spki', format: 'pem' }).toString(), priv: privateKey };
};
const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return isChangeoverError(e) ? e.code : String(e);
  }
  return 'passed';
};

describe('agent trust roots', () => {
  const old = key();
  const a = key();
  const b = key();
  const doc = JSON.stringify({ r2025: { key: old.pub, retired: true }, r2026: a.pub, r2027: b.pub });
  const m = manifestOf('app', '1.0.0', [moduleOf('app', '1.0.0', 'x')]);

  it('reads several active keys and a retired one, inline or from a file', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'agent-roots-')), 'roots.json');
    writeFileSync(file, doc);
    for (const spec of [doc, file]) {
      const t = loadTrustRoots(spec);
      expect(Object.keys(t.roots).sort()).toEqual(['r2025', 'r2026', 'r2027']);
      expect(t.retired).toEqual(['r2025']);
    }
    expect(loadTrustRoots('')).toEqual({ roots: {}, retired: [] });
  });

  it('accepts either active key; a retired key by policy; never unsigned, unknown or altered', () => {
    const t = loadTrustRoots(doc);
    const accept = signatureVerifier(t, 'accept');
    const refuse = signatureVerifier(t, 'refuse');
    for (const [k, id] of [[a, 'r2026'], [b, 'r2027']] as const) {
      const s = signManifest(m, k.priv, id);
      expect(codeOf(() => refuse(s.manifest, s.signature))).toBe('passed');
    }
    const byOld = signManifest(m, old.priv, 'r2025');
    expect(codeOf(() => accept(byOld.manifest, byOld.signature))).toBe('passed');
    expect(codeOf(() => refuse(byOld.manifest, byOld.signature))).toBe('UNTRUSTED_KEY');
    expect(codeOf(() => accept(m, undefined))).toBe('SIGNATURE_INVALID');
    const stranger = signManifest(m, key().priv, 'r2026');
    expect(codeOf(() => accept(stranger.manifest, stranger.signature))).toBe('SIGNATURE_INVALID');
    const good = signManifest(m, a.priv, 'r2026');
    expect(codeOf(() => accept({ ...m, description: 'altered' }, good.signature))).toBe('SIGNATURE_INVALID');
    // The cache is per manifest object and signature: the same object with another key id is checked again.
    expect(codeOf(() => accept(good.manifest, good.signature))).toBe('passed');
    expect(codeOf(() => accept(good.manifest, { keyId: 'r2027', value: good.signature!.value }))).toBe('SIGNATURE_INVALID');
  });

  it('refuses malformed trust roots with a message naming AGENT_TRUST_ROOTS', () => {
    for (const spec of ['{', '[]', JSON.stringify({ k: { key: a.pub, retired: 1 } }), '/nonexistent/roots.json']) expect(() => loadTrustRoots(spec)).toThrow(/AGENT_TRUST_ROOTS/);
  });
});

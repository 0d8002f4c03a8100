import { readFileSync } from 'node:fs';
import { assertTrustedSignature, ChangeoverError, toPublicKey, type PackageManifest, type Signature, type TrustRoots } from '@changeover/contracts';

/** Parses AGENT_TRUST_ROOTS: inline JSON `{ keyId: publicKey }` or the path of a file holding it. */
export function loadTrustRoots(spec: string): TrustRoots {
  if (!spec.trim()) return {};
  const text = spec.trim().startsWith('{') ? spec : readFileSync(spec, 'utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ChangeoverError('VALIDATION_FAILED', 'AGENT_TRUST_ROOTS: not JSON (expected {"keyId": "<Ed25519 public key>"} or a file holding it)');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new ChangeoverError('VALIDATION_FAILED', 'AGENT_TRUST_ROOTS: expected an object keyId → public key');
  const roots: TrustRoots = {};
  for (const [keyId, key] of Object.entries(parsed)) {
    if (typeof key !== 'string') throw new ChangeoverError('VALIDATION_FAILED', `AGENT_TRUST_ROOTS: key ${keyId} is not a string`);
    roots[keyId] = toPublicKey(keyId, key);
  }
  return roots;
}

/**
 * A signature checker for the agent core. With no trust roots every package is accepted (a lab
 * setting, warned about at start-up); otherwise an unsigned, untrusted or bad signature throws.
 * Results are cached per manifest object, which a class broadcast shares among its nodes.
 */
export function signatureVerifier(roots: TrustRoots): (manifest: PackageManifest, signature: Signature | undefined) => void {
  if (!Object.keys(roots).length) return () => undefined;
  const ok = new WeakMap<PackageManifest, string>();
  return (manifest, signature) => {
    if (signature && ok.get(manifest) === signature.value) return;
    assertTrustedSignature(signature ? { manifest, signature } : { manifest }, roots);
    if (signature) ok.set(manifest, signature.value);
  };
}

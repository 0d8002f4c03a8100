import { readFileSync } from 'node:fs';
import { assertTrustedSignature, ChangeoverError, parseTrustConfig, type PackageManifest, type RetiredKeyPolicy, type Signature, type TrustConfig } from '@changeover/contracts';

/**
 * Parses AGENT_TRUST_ROOTS: inline JSON `{ keyId: publicKey | { key, retired } }` or the path of a
 * file holding it. Several keys may be active at once (rotation); retired ones verify old packages.
 */
export function loadTrustRoots(spec: string): TrustConfig {
  if (!spec.trim()) return { roots: {}, retired: [] };
  let text: string;
  try {
    text = spec.trim().startsWith('{') ? spec : readFileSync(spec.trim(), 'utf8');
  } catch (e) {
    throw new ChangeoverError('VALIDATION_FAILED', `AGENT_TRUST_ROOTS: cannot read ${spec.trim().slice(0, 200)} (${e instanceof Error ? e.message : String(e)})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ChangeoverError('VALIDATION_FAILED', 'AGENT_TRUST_ROOTS: not JSON (expected {"keyId": "<Ed25519 public key>"} or a file holding it)');
  }
  return parseTrustConfig(parsed, 'AGENT_TRUST_ROOTS');
}

/**
 * A signature checker for the agent core, used at vote and at commit. With no trust roots every
 * package is accepted (a lab setting, warned about at start-up); otherwise an unsigned, untrusted,
 * bad, or (by policy) retired-key signature throws. Results are cached per manifest object, which
 * a class broadcast shares among its nodes.
 */
export function signatureVerifier(trust: TrustConfig, retiredPolicy: RetiredKeyPolicy = 'accept'): (manifest: PackageManifest, signature: Signature | undefined) => void {
  if (!Object.keys(trust.roots).length) return () => undefined;
  const ok = new WeakMap<PackageManifest, string>();
  return (manifest, signature) => {
    if (signature && ok.get(manifest) === `${signature.keyId}\n${signature.value}`) return;
    assertTrustedSignature(signature ? { manifest, signature } : { manifest }, trust.roots, { retired: trust.retired, retiredPolicy });
    if (signature) ok.set(manifest, `${signature.keyId}\n${signature.value}`);
  };
}

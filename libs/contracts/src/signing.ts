import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJson, type PackageManifest, type SignedPackage } from './domain.js';
import { ChangeoverError } from './errors.js';

// Package signatures: Ed25519 over canonicalJson(manifest), base64. Shared by the registry and the agent.

/** keyId → public key (PEM, base64 SPKI DER, or base64 raw 32-byte Ed25519 key, or a KeyObject). */
export type TrustRoots = Record<string, string | KeyObject>;

export type SignatureCheck =
  | { status: 'valid'; keyId: string }
  | { status: 'unsigned' }
  | { status: 'untrusted-key'; keyId: string }
  | { status: 'invalid'; keyId: string };

// DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it.
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** Parses one trust-root entry into a public key; throws VALIDATION_FAILED naming the key id. */
export function toPublicKey(keyId: string, key: string | KeyObject): KeyObject {
  if (typeof key !== 'string') return key;
  try {
    if (key.includes('-----BEGIN')) return ensureEd25519(keyId, createPublicKey(key));
    const der = Buffer.from(key.trim(), 'base64');
    const spki = der.length === 32 ? Buffer.concat([ED25519_SPKI_PREFIX, der]) : der;
    return ensureEd25519(keyId, createPublicKey({ key: spki, format: 'der', type: 'spki' }));
  } catch (e) {
    if (e instanceof ChangeoverError) throw e;
    throw new ChangeoverError('VALIDATION_FAILED', `trust root ${keyId}: not an Ed25519 public key (PEM, base64 SPKI or base64 raw)`);
  }
}

function ensureEd25519(keyId: string, key: KeyObject): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519') throw new ChangeoverError('VALIDATION_FAILED', `trust root ${keyId}: key type ${key.asymmetricKeyType} is not ed25519`);
  return key;
}

/** Signs a manifest with an Ed25519 private key (PEM). */
export function signManifest(manifest: PackageManifest, privateKeyPem: string | KeyObject, keyId: string): SignedPackage {
  const key = typeof privateKeyPem === 'string' ? createPrivateKey(privateKeyPem) : privateKeyPem;
  const value = sign(null, Buffer.from(canonicalJson(manifest)), key).toString('base64');
  return { manifest, signature: { keyId, value } };
}

/** Checks a package's signature against trust roots; never throws for a bad signature (see assertTrustedSignature). */
export function verifyManifest(pkg: SignedPackage, trustRoots: TrustRoots): SignatureCheck {
  const sig = pkg.signature;
  if (!sig) return { status: 'unsigned' };
  const root = Object.hasOwn(trustRoots, sig.keyId) ? trustRoots[sig.keyId] : undefined;
  if (root === undefined) return { status: 'untrusted-key', keyId: sig.keyId };
  let ok = false;
  try {
    ok = verify(null, Buffer.from(canonicalJson(pkg.manifest)), toPublicKey(sig.keyId, root), Buffer.from(sig.value, 'base64'));
  } catch {
    ok = false;
  }
  return ok ? { status: 'valid', keyId: sig.keyId } : { status: 'invalid', keyId: sig.keyId };
}

/** verifyManifest, throwing SIGNATURE_INVALID / UNTRUSTED_KEY unless the signature is valid. */
export function assertTrustedSignature(pkg: SignedPackage, trustRoots: TrustRoots): { keyId: string } {
  const check = verifyManifest(pkg, trustRoots);
  const id = `${pkg.manifest.name}@${pkg.manifest.version}`;
  switch (check.status) {
    case 'valid':
      return { keyId: check.keyId };
    case 'unsigned':
      throw new ChangeoverError('SIGNATURE_INVALID', `package ${id} is not signed`, { package: id });
    case 'untrusted-key':
      throw new ChangeoverError('UNTRUSTED_KEY', `package ${id} is signed by key ${check.keyId}, which is not a trust root`, { package: id, keyId: check.keyId });
    case 'invalid':
      throw new ChangeoverError('SIGNATURE_INVALID', `package ${id}: signature by ${check.keyId} does not match the manifest`, { package: id, keyId: check.keyId });
    default: {
      const never: never = check;
      return never;
    }
  }
}

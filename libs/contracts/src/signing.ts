import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJson, type PackageManifest, type SignedPackage } from './domain.js';
import { ChangeoverError } from './errors.js';

// Package signatures: Ed25519 over canonicalJson(manifest), base64. Shared by the registry and the agent.

/** keyId → public key (PEM, base64 SPKI DER, or base64 raw 32-byte Ed25519 key, or a KeyObject). */
export type TrustRoots = Record<string, string | KeyObject>;

/**
 * Key rotation: a retired key stays among the trust roots so its old packages can still be
 * verified, but signs nothing new. `accept` keeps trusting its packages; `refuse` refuses them.
 */
export const RETIRED_KEY_POLICIES = ['accept', 'refuse'] as const;
export type RetiredKeyPolicy = (typeof RETIRED_KEY_POLICIES)[number];

export interface TrustOptions {
  /** Key ids (among the trust roots) that are retired. */
  retired?: readonly string[];
  /** What a valid signature by a retired key means; default `accept`. */
  retiredPolicy?: RetiredKeyPolicy;
}

export type SignatureCheck =
  | { status: 'valid'; keyId: string; retired?: true }
  | { status: 'unsigned' }
  | { status: 'untrusted-key'; keyId: string }
  | { status: 'retired-key'; keyId: string }
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
export function verifyManifest(pkg: SignedPackage, trustRoots: TrustRoots, opts: TrustOptions = {}): SignatureCheck {
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
  if (!ok) return { status: 'invalid', keyId: sig.keyId };
  if (!opts.retired?.includes(sig.keyId)) return { status: 'valid', keyId: sig.keyId };
  return (opts.retiredPolicy ?? 'accept') === 'accept' ? { status: 'valid', keyId: sig.keyId, retired: true } : { status: 'retired-key', keyId: sig.keyId };
}

/** verifyManifest, throwing SIGNATURE_INVALID / UNTRUSTED_KEY unless the signature is valid. */
export function assertTrustedSignature(pkg: SignedPackage, trustRoots: TrustRoots, opts: TrustOptions = {}): { keyId: string; retired: boolean } {
  const check = verifyManifest(pkg, trustRoots, opts);
  const id = `${pkg.manifest.name}@${pkg.manifest.version}`;
  switch (check.status) {
    case 'valid':
      return { keyId: check.keyId, retired: check.retired === true };
    case 'retired-key':
      throw new ChangeoverError('UNTRUSTED_KEY', `package ${id} is signed by retired key ${check.keyId}, whose packages are refused by policy`, { package: id, keyId: check.keyId, retired: true });
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

/** Trust roots as configured: every key (active and retired) and which ones are retired. */
export interface TrustConfig {
  roots: TrustRoots;
  retired: string[];
}

/**
 * Reads the trust-roots document shared by the registry and the agent: a JSON object mapping a
 * key id to an Ed25519 public key, or to `{ "key": "<public key>", "retired": true }` for a key
 * rotated out. Throws VALIDATION_FAILED naming `what` (the variable) and the key id.
 */
export function parseTrustConfig(json: unknown, what: string): TrustConfig {
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new ChangeoverError('VALIDATION_FAILED', `${what}: expected a JSON object keyId → public key`);
  const roots: TrustRoots = {};
  const retired: string[] = [];
  for (const [keyId, entry] of Object.entries(json)) {
    if (keyId.length === 0 || keyId.length > 128) throw new ChangeoverError('VALIDATION_FAILED', `${what}: key ids must be 1-128 characters`);
    let key: unknown = entry;
    if (entry && typeof entry === 'object' && !Array.isArray(entry)) {
      const extra = Object.keys(entry).filter((k) => k !== 'key' && k !== 'retired');
      const flag = (entry as { retired?: unknown }).retired;
      if (extra.length > 0 || (flag !== undefined && typeof flag !== 'boolean')) throw new ChangeoverError('VALIDATION_FAILED', `${what}: key ${keyId}: expected { "key": "<public key>", "retired": true|false }`);
      key = (entry as { key?: unknown }).key;
      if (flag === true) retired.push(keyId);
    }
    if (typeof key !== 'string' || key.length === 0) throw new ChangeoverError('VALIDATION_FAILED', `${what}: key ${keyId} is not a public key string`);
    try {
      roots[keyId] = toPublicKey(keyId, key);
    } catch (e) {
      throw new ChangeoverError('VALIDATION_FAILED', `${what}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return { roots, retired };
}

import { createHash } from 'node:crypto';
import semver from 'semver';
import { assertTrustedSignature, canonicalJson, ChangeoverError, verifyManifest, type PackageManifest, type RetiredKeyPolicy, type SignatureVerdict, type SignedPackage, type TrustRoots } from '@changeover/contracts';

// Pure rules of publishing: what makes a manifest acceptable, how its content and signature are judged.

export interface SignaturePolicy {
  trustRoots: TrustRoots;
  requireSignatures: boolean;
  /** Key ids among the trust roots that are retired (key rotation). */
  retiredKeys?: readonly string[];
  /** A valid signature by a retired key: still trusted (`accept`, the default) or refused. */
  retiredKeyPolicy?: RetiredKeyPolicy;
}

export interface SignatureJudgement {
  verdict: SignatureVerdict;
  signedBy: string | null;
  /** Signed by a retired key (accepted by policy): such a key may not sign a version the registry does not hold yet. */
  retired?: boolean;
}

/** The content identity of a version: sha256 of the canonical manifest (the signature is not content). */
export const contentHash = (manifest: PackageManifest) => `sha256:${createHash('sha256').update(canonicalJson(manifest)).digest('hex')}`;

/** Checks what the schema cannot: real semver, valid ranges, one variant per module name, processor type and `requires`. */
export function checkManifest(manifest: PackageManifest, maxModuleBytes: number): void {
  const id = `${manifest.name}@${manifest.version}`;
  const bad = (field: string, message: string) => new ChangeoverError('VALIDATION_FAILED', `package ${id}: ${field}: ${message}`, { package: id, field });
  if (!semver.valid(manifest.version)) throw bad('version', `${manifest.version} is not a semantic version`);
  for (const [dep, range] of Object.entries(manifest.requires)) {
    if (semver.validRange(range) === null) throw bad(`requires.${dep}`, `${range} is not a semver range`);
  }
  manifest.consumes.forEach((api, i) => {
    const range = api.slice(api.indexOf('@') + 1);
    if (semver.validRange(range) === null) throw bad(`consumes.${i}`, `${range} is not a semver range`);
  });
  const seen = new Set<string>();
  manifest.modules.forEach((m, i) => {
    if (!semver.valid(m.version)) throw bad(`modules.${i}.version`, `${m.version} is not a semantic version`);
    // Builds of one module may differ by processor type or by `requires` (claim 3: a GPU build beside a
    // CPU one); two with the same of both would leave the selection to their order.
    const key = canonicalJson([m.name, m.processorType, m.requires]);
    if (seen.has(key)) throw bad(`modules.${i}`, `module ${m.name} for ${m.processorType}${Object.keys(m.requires).length ? ` with requires ${canonicalJson(m.requires)}` : ''} appears twice`);
    seen.add(key);
    if (m.size > maxModuleBytes) throw new ChangeoverError('TOO_LARGE', `package ${id}: module ${m.name} is ${m.size} bytes, over the limit of ${maxModuleBytes}`, { package: id, field: `modules.${i}.size` });
  });
}

/**
 * Judges the signature: with signatures required, anything but a valid signature from a trust root
 * is refused; otherwise a present signature must still verify when roots are configured.
 */
export function judgeSignature(pkg: SignedPackage, policy: SignaturePolicy): SignatureJudgement {
  const opts = { retired: policy.retiredKeys ?? [], retiredPolicy: policy.retiredKeyPolicy ?? 'accept' };
  const trusted = (t: { keyId: string; retired: boolean }): SignatureJudgement => (t.retired ? { verdict: 'valid', signedBy: t.keyId, retired: true } : { verdict: 'valid', signedBy: t.keyId });
  if (policy.requireSignatures) return trusted(assertTrustedSignature(pkg, policy.trustRoots, opts));
  if (!pkg.signature) return { verdict: 'unsigned', signedBy: null };
  if (Object.keys(policy.trustRoots).length === 0) return { verdict: 'not-checked', signedBy: pkg.signature.keyId };
  const check = verifyManifest(pkg, policy.trustRoots, opts);
  if (check.status === 'valid') return trusted({ keyId: check.keyId, retired: check.retired === true });
  return trusted(assertTrustedSignature(pkg, policy.trustRoots, opts));
}

/** Key rotation: a retired key may vouch for versions already published, never for a new one. */
export function assertNotNewFromRetiredKey(id: string, judgement: SignatureJudgement): void {
  if (judgement.retired) throw new ChangeoverError('UNTRUSTED_KEY', `package ${id} is new and signed by retired key ${judgement.signedBy}; sign it with an active key`, { package: id, keyId: judgement.signedBy, retired: true });
}

/** Distinct blob digests a manifest references, with the declared size of each. */
export function referencedBlobs(manifest: PackageManifest): Map<string, number> {
  const blobs = new Map<string, number>();
  for (const m of manifest.modules) {
    const known = blobs.get(m.digest);
    const id = `${manifest.name}@${manifest.version}`;
    if (known !== undefined && known !== m.size) throw new ChangeoverError('VALIDATION_FAILED', `package ${id}: digest ${m.digest} declared with sizes ${known} and ${m.size}`, { package: id });
    blobs.set(m.digest, m.size);
  }
  return blobs;
}

/**
 * Versions of one package that retention may prune (claim 11): all but the newest `retain`, except
 * versions some node has installed or an active rollout references. `retain` 0 keeps everything.
 */
export function prunableVersions(versions: readonly string[], retain: number, protectedVersions: ReadonlySet<string>): string[] {
  if (retain <= 0) return [];
  const newestFirst = [...versions].sort(semver.rcompare);
  return newestFirst.slice(retain).filter((v) => !protectedVersions.has(v));
}

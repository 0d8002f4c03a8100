import { canonicalJson, type PackageManifest, type SelectedPackage, type Signature, type SignedPackage, type Verdict } from '@changeover/contracts';
import { AGENT_PROCESS_ID } from './own-verdicts.js';

// Vetoes a proposal whose signed manifests fail the trust roots or disagree with the selection
// (claim 5), so a bad package is refused at vote time instead of at commit. Pure but for `verify`.

export type VerifySignature = (manifest: PackageManifest, signature: Signature | undefined) => void;

const veto = (message: string): Verdict => ({ processId: AGENT_PROCESS_ID, decision: 'veto', reason: 'SIGNATURE_INVALID', message: message.slice(0, 4000) });

/** No `signed` list (an older sender): nothing to check here; the commit checks the signatures. */
export function signatureVerdicts(packages: SelectedPackage[], signed: SignedPackage[] | undefined, verify: VerifySignature): Verdict[] {
  if (!signed) return [];
  const out: Verdict[] = [];
  for (const p of packages) {
    const id = `${p.name}@${p.version}`;
    const s = signed.find((x) => x.manifest.name === p.name && x.manifest.version === p.version);
    if (!s) {
      out.push(veto(`package ${id} has no signed manifest in the proposal`));
      continue;
    }
    try {
      verify(s.manifest, s.signature);
    } catch (e) {
      out.push(veto(e instanceof Error ? e.message : String(e)));
      continue;
    }
    const mismatch = cachedMismatch(p, s.manifest);
    if (mismatch) out.push(veto(`package ${id}: ${mismatch}`));
  }
  return out;
}

const mismatches = new WeakMap<SelectedPackage, WeakMap<PackageManifest, string | null>>();

/** The comparison is pure: a class broadcast's nodes share the decoded selection and manifest, so it is made once for all of them. */
function cachedMismatch(p: SelectedPackage, manifest: PackageManifest): string | null {
  let byManifest = mismatches.get(p);
  if (!byManifest) mismatches.set(p, (byManifest = new WeakMap()));
  let found = byManifest.get(manifest);
  if (found === undefined) byManifest.set(manifest, (found = selectionMismatch(p, manifest)));
  return found;
}

/** The selection must be a faithful narrowing of the signed manifest: same modules, dependencies and APIs. */
function selectionMismatch(p: SelectedPackage, manifest: PackageManifest): string | null {
  for (const m of p.modules) {
    // One name and processor type can have several variants (differing in `requires`): the digest says which one.
    const variants = manifest.modules.filter((x) => x.name === m.name && x.processorType === m.processorType);
    if (!variants.length) return `module ${m.name} (${m.processorType}) is not in the signed manifest`;
    const signedModule = variants.find((x) => x.digest === m.digest);
    if (!signedModule) return `module ${m.name} digest ${m.digest} differs from the signed ${variants.map((x) => x.digest).join(' | ')}`;
    if (signedModule.version !== m.version || signedModule.size !== m.size || canonicalJson(signedModule.dependsOn) !== canonicalJson(m.dependsOn)) {
      return `module ${m.name} differs from the signed manifest (version, size or dependencies)`;
    }
  }
  if (canonicalJson(p.requires) !== canonicalJson(manifest.requires) || canonicalJson(p.provides) !== canonicalJson(manifest.provides) || canonicalJson(p.consumes) !== canonicalJson(manifest.consumes)) {
    return 'requires, provides or consumes differ from the signed manifest';
  }
  return null;
}

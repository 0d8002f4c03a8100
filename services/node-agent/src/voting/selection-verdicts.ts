import type { PackageManifest, SelectedPackage, Signature, SignedPackage, Verdict } from '@changeover/contracts';
import { AGENT_PROCESS_ID } from './own-verdicts.js';

// Vetoes, at vote time, a proposal whose modules are not the ones this node would install: the
// registry and the agent select with the same function, so a difference means the registry selected
// for characteristics the node no longer has (a stale hello). Needs the proposal's signed manifests.

export type Selection = (manifest: PackageManifest, signature: Signature | undefined) => { ok: true; pkg: { modules: { name: string; digest: string }[] } } | { ok: false; reason: string };

const veto = (message: string): Verdict => ({ processId: AGENT_PROCESS_ID, decision: 'veto', reason: 'PROCESSOR_UNSUPPORTED', message: message.slice(0, 4000) });

const digests = (modules: readonly { name: string; digest: string }[]) =>
  modules
    .map((m) => `${m.name}:${m.digest}`)
    .sort()
    .join(',');

/** Without `signed` (an older sender) the node has only the selection, nothing to compare: the commit selects. */
export function selectionVerdicts(packages: SelectedPackage[], signed: SignedPackage[] | undefined, select: Selection): Verdict[] {
  if (!signed) return [];
  const out: Verdict[] = [];
  for (const p of packages) {
    const s = signed.find((x) => x.manifest.name === p.name && x.manifest.version === p.version);
    if (!s) continue; // signatureVerdicts vetoes it
    const own = select(s.manifest, s.signature);
    const id = `${p.name}@${p.version}`;
    if (!own.ok) out.push(veto(`package ${id} is not supported on this node: ${own.reason}`));
    else if (digests(own.pkg.modules) !== digests(p.modules)) out.push(veto(`package ${id}: the proposal selects ${digests(p.modules)} but this node's characteristics select ${digests(own.pkg.modules)}`));
  }
  return out;
}

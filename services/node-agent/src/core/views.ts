import type { SelectedPackage } from '@changeover/contracts';
import type { PackageView, ProposalAnalysis } from '../affected/affected-processes.js';
import type { StoredPackage } from '../model/state.js';
import type { ProcessRuntime } from './ports.js';

/** A proposed or installed package as the affected-process analysis sees it. */
export const toView = (p: SelectedPackage | StoredPackage): PackageView =>
  'manifest' in p
    ? { name: p.manifest.name, version: p.manifest.version, modules: p.modules, provides: p.manifest.provides, consumes: p.manifest.consumes }
    : { name: p.name, version: p.version, modules: p.modules, provides: p.provides, consumes: p.consumes };

/** Adds the runtime's node-wide processes, which are asked about every update. */
export function withResidents(analysis: ProposalAnalysis, runtime: ProcessRuntime): ProposalAnalysis {
  const residents = runtime.residents?.() ?? [];
  if (!residents.length) return analysis;
  const known = new Set(analysis.affected.map((a) => a.processId));
  const extra = residents.filter((r) => !known.has(r.processId)).map((r) => ({ processId: r.processId, module: r.module, why: ['resident'] }));
  return { ...analysis, affected: [...analysis.affected, ...extra] };
}

import type { SelectedPackage } from '@changeover/contracts';
import { analyzeChange, analyzeProposal, type PackageView, type ProposalAnalysis, type RunningProcess } from '../affected/affected-processes.js';
import type { StoredPackage } from '../model/state.js';
import type { ProcessRuntime } from './ports.js';

/** A proposed or installed package as the affected-process analysis sees it. */
export const toView = (p: SelectedPackage | StoredPackage): PackageView =>
  'manifest' in p
    ? { name: p.manifest.name, version: p.manifest.version, modules: p.modules, provides: p.manifest.provides, consumes: p.manifest.consumes }
    : { name: p.name, version: p.version, modules: p.modules, provides: p.provides, consumes: p.consumes };

/** Adds the runtime's node-wide processes, which are asked about every update. */
function addResidents(analysis: ProposalAnalysis, residents: readonly RunningProcess[]): ProposalAnalysis {
  if (!residents.length) return analysis;
  const known = new Set(analysis.affected.map((a) => a.processId));
  const extra = residents.filter((r) => !known.has(r.processId)).map((r) => ({ processId: r.processId, module: r.module, why: ['resident'] }));
  return { ...analysis, affected: [...analysis.affected, ...extra] };
}

// The analysis is a pure function of its inputs, and the inputs of simulated nodes in one broadcast
// are the same objects (interned sets, the shared decoded proposal, the runtime's cached process
// lists): keyed by those objects, it is worked out once and shared, read-only, by every such node.
// Inputs made afresh (a real runtime's process list) simply miss, and their entries go with them.
type Memo<K extends object, V> = WeakMap<K, V>;
const NO_RESIDENTS: readonly RunningProcess[] = [];
const proposals: Memo<StoredPackage[], Memo<SelectedPackage[], Memo<readonly RunningProcess[], Memo<readonly RunningProcess[], ProposalAnalysis>>>> = new WeakMap();
const changes: Memo<StoredPackage[], Memo<StoredPackage[], Memo<readonly RunningProcess[], Memo<readonly RunningProcess[], ProposalAnalysis>>>> = new WeakMap();

function memo<A extends object, B extends object>(
  root: Memo<A, Memo<B, Memo<readonly RunningProcess[], Memo<readonly RunningProcess[], ProposalAnalysis>>>>,
  a: A,
  b: B,
  running: readonly RunningProcess[],
  residents: readonly RunningProcess[],
  compute: () => ProposalAnalysis,
): ProposalAnalysis {
  let byB = root.get(a);
  if (!byB) root.set(a, (byB = new WeakMap()));
  let byRunning = byB.get(b);
  if (!byRunning) byB.set(b, (byRunning = new WeakMap()));
  let byResidents = byRunning.get(running);
  if (!byResidents) byRunning.set(running, (byResidents = new WeakMap()));
  let analysis = byResidents.get(residents);
  if (!analysis) byResidents.set(residents, (analysis = compute()));
  return analysis;
}

/** What a proposal would change on a node with this active set, the runtime's residents included. */
export function analyzeProposalOn(active: StoredPackage[], proposed: SelectedPackage[], runtime: ProcessRuntime): ProposalAnalysis {
  const running = runtime.running();
  const residents = runtime.residents?.() ?? NO_RESIDENTS;
  return memo(proposals, active, proposed, running, residents, () => addResidents(analyzeProposal(active.map(toView), proposed.map(toView), running), residents));
}

/** What changing over from one whole set to another touches, the runtime's residents included. */
export function analyzeChangeOn(active: StoredPackage[], target: StoredPackage[], runtime: ProcessRuntime): ProposalAnalysis {
  const running = runtime.running();
  const residents = runtime.residents?.() ?? NO_RESIDENTS;
  return memo(changes, active, target, running, residents, () => addResidents(analyzeChange(active.map(toView), target.map(toView), running), residents));
}

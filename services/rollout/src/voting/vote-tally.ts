import type { RolloutPolicy, Veto } from '@changeover/contracts';
import type { NodeEntry, NodePhase } from '../rollout/rollout.state.js';

export type Tally = { outcome: 'blocked'; vetoes: Veto[]; vetoingNodes: number } | { outcome: 'accepted'; excluded: string[]; accepted: number };

export interface TallyInput {
  policy: RolloutPolicy;
  nodes: ReadonlyMap<string, NodeEntry>;
  /** Phases decided in this same command, not yet folded into `nodes`. */
  overlay?: ReadonlyMap<string, NodePhase>;
  /** Vetoes so far (from votes and unreachable nodes), including this command's. */
  vetoes: readonly Veto[];
  unsupported: ReadonlyMap<string, readonly string[]>;
}

/**
 * Atomic policy: any vetoing node blocks every node (claim 17). Quorum: up to k vetoing nodes are
 * left out and the rest go ahead. A node whose packages have no module for it vetoes with
 * PROCESSOR_UNSUPPORTED unless it was forced.
 */
export function tally({ policy, nodes, overlay, vetoes, unsupported }: TallyInput): Tally {
  const vetoing = new Set<string>();
  const out: Veto[] = [];
  let accepted = 0;
  for (const [id, entry] of nodes) {
    const phase = overlay?.get(id) ?? entry.phase;
    if (phase === 'vetoed' || phase === 'unreachable') vetoing.add(id);
    else if (phase === 'accepted') {
      const missing = unsupported.get(id);
      if (missing && !entry.forced) {
        vetoing.add(id);
        for (const pkg of missing) out.push({ nodeId: id, processId: 'orchestrator', reason: 'PROCESSOR_UNSUPPORTED', message: `package ${pkg} has no module for this node's processor type or characteristics` });
      } else accepted++;
    }
  }
  for (const v of vetoes) if (vetoing.has(v.nodeId)) out.push(v);
  const tolerated = policy.vote.mode === 'quorum' ? policy.vote.toleratedVetoes : 0;
  if (vetoing.size > tolerated) return { outcome: 'blocked', vetoes: sortVetoes(out), vetoingNodes: vetoing.size };
  return { outcome: 'accepted', excluded: [...vetoing].sort(), accepted };
}

const sortVetoes = (v: Veto[]) => v.sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : a.processId < b.processId ? -1 : a.processId > b.processId ? 1 : 0));

import type { Assignment, RolloutPolicy } from '@changeover/contracts';
import type { NodeEntry, NodePhase, Wave } from '../rollout/rollout.state.js';

const apiName = (api: string) => api.slice(0, api.indexOf('@'));

/**
 * Tier of each assignment: 0 when it consumes no API that another assignment of the rollout
 * provides, else one more than its providers' tier, so providers change over before consumers.
 */
export function apiTiers(assignments: readonly Assignment[]): number[] {
  const provides = assignments.map((a) => new Set(a.packages.flatMap((p) => p.provides.map(apiName))));
  const consumes = assignments.map((a) => new Set(a.packages.flatMap((p) => p.consumes.map(apiName))));
  const tiers = assignments.map(() => 0);
  // Longest-path relaxation, bounded by the number of assignments so a cycle cannot loop forever.
  for (let round = 0; round < assignments.length; round++) {
    let changed = false;
    for (let i = 0; i < assignments.length; i++) {
      for (let j = 0; j < assignments.length; j++) {
        if (i === j) continue;
        const consumesFromJ = [...consumes[i]!].some((api) => provides[j]!.has(api) && !provides[i]!.has(api));
        if (consumesFromJ && tiers[i]! <= tiers[j]!) {
          tiers[i] = tiers[j]! + 1;
          changed = true;
        }
      }
    }
    if (!changed) break;
  }
  return tiers.map((t) => Math.min(t, assignments.length));
}

/** How many nodes the next wave takes: the canary first, then a count or a percentage of all accepted nodes. */
export function waveSize(policy: RolloutPolicy, waveIndex: number, totalAccepted: number): number {
  const { canary, size } = policy.waves;
  let n: number;
  if (waveIndex === 0 && canary > 0) n = canary;
  else if (typeof size === 'number') n = size;
  else n = Math.ceil((Number(size.slice(0, -1)) / 100) * totalAccepted);
  if (policy.maxConcurrent !== undefined) n = Math.min(n, policy.maxConcurrent);
  return Math.max(1, n);
}

export interface NextWaveInput {
  policy: RolloutPolicy;
  assignments: readonly Assignment[];
  nodes: ReadonlyMap<string, NodeEntry>;
  overlay?: ReadonlyMap<string, NodePhase>;
  waves: readonly Wave[];
  /** Selections left out for now (their class is outside its maintenance window). */
  skip?: ReadonlySet<number>;
}

/** The nodes of the next wave: accepted nodes ordered by API tier then id, cut at a tier boundary. */
export function nextWave({ policy, assignments, nodes, overlay, waves, skip }: NextWaveInput): string[] {
  const tiers = apiTiers(assignments);
  const candidates: { id: string; tier: number }[] = [];
  for (const [id, entry] of nodes) {
    if ((overlay?.get(id) ?? entry.phase) === 'accepted' && !skip?.has(entry.selection)) candidates.push({ id, tier: tiers[entry.selection] ?? 0 });
  }
  if (candidates.length === 0) return [];
  candidates.sort((a, b) => a.tier - b.tier || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const alreadyWaved = waves.reduce((sum, w) => sum + w.nodes.length, 0);
  const size = waveSize(policy, waves.length, alreadyWaved + candidates.length);
  const tier = candidates[0]!.tier;
  const out: string[] = [];
  for (const c of candidates) {
    if (out.length >= size || c.tier !== tier) break;
    out.push(c.id);
  }
  return out;
}

/** Whether a wave has met its success threshold (fraction of its nodes completed). */
export const waveSucceeded = (policy: RolloutPolicy, wave: Pick<Wave, 'nodes' | 'completed'>) => wave.completed >= Math.ceil(policy.waves.successThreshold * wave.nodes.length);

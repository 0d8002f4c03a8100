import { createHash } from 'node:crypto';
import { canonicalJson, type Inventory, type InstalledPackage, type Module, type PackageManifest, type ProgressReport, type Signature, type VoteReport } from '@changeover/contracts';

/** A package as installed on this node: its signed manifest and the modules selected for this node. */
export interface StoredPackage {
  manifest: PackageManifest;
  signature?: Signature;
  /** The manifest's modules that run on this node (processor type and requirements). */
  modules: Module[];
}

/** The agent's record of one rollout, so repeats are answered from it (design §5). */
export interface RolloutRecord {
  rolloutId: string;
  voteAttempt?: number;
  vote?: VoteReport;
  /** `name@version` of each proposed package: a commit must install exactly these. */
  proposed?: string[];
  commitAttempt?: number;
  /** The last terminal progress report for this rollout, re-sent on a duplicate commit. */
  final?: ProgressReport;
  aborted?: boolean;
  regressAttempt?: number;
  regressFinal?: ProgressReport;
}

export const JOURNAL_STEPS = ['fetched', 'prepared', 'started', 'switched'] as const;
export type JournalStep = (typeof JOURNAL_STEPS)[number];

/** The changeover in progress; present only between the first step and confirmation. */
export interface Journal {
  rolloutId: string;
  attempt: number;
  kind: 'commit' | 'regress';
  step: JournalStep;
  from: { active: StoredPackage[]; previous: StoredPackage[] };
  to: StoredPackage[];
}

/** Everything a node persists. Small on purpose: simulated fleets keep 10,000 of these in memory. */
export interface NodeState {
  active: StoredPackage[];
  previous: StoredPackage[];
  /** Older package versions whose modules are still local, for regression to a named version. */
  kept: StoredPackage[];
  records: RolloutRecord[];
  journal: Journal | null;
}

export const MAX_RECORDS = 64;
export const MAX_KEPT = 16;

export function emptyState(): NodeState {
  return { active: [], previous: [], kept: [], records: [], journal: null };
}

const installedCache = new WeakMap<StoredPackage, InstalledPackage>();

/** The package as an inventory lists it (one object per stored package: nodes that share a package share it, read-only). */
export function installedPackage(p: StoredPackage): InstalledPackage {
  const cached = installedCache.get(p);
  if (cached) return cached;
  const out: InstalledPackage = {
    name: p.manifest.name,
    version: p.manifest.version,
    modules: p.modules.map((m) => ({ name: m.name, version: m.version, digest: m.digest })),
    requires: p.manifest.requires,
    provides: p.manifest.provides,
    consumes: p.manifest.consumes,
  };
  installedCache.set(p, out);
  return out;
}

const digestCache = new WeakMap<StoredPackage[], string>();

/** sha256 over the canonical active set: equal digests mean equal inventories. */
export function setDigest(set: StoredPackage[]): string {
  const cached = digestCache.get(set);
  if (cached) return cached;
  const canonical = canonicalJson([...set].map(installedPackage).sort((a, b) => (a.name < b.name ? -1 : 1)));
  const digest = `sha256:${createHash('sha256').update(canonical).digest('hex')}`;
  digestCache.set(set, digest);
  return digest;
}

const inventoryCache = new WeakMap<StoredPackage[], WeakMap<StoredPackage[], Inventory>>();

/** The node's inventory; one object per (active, previous) pair of sets, shared read-only by the nodes holding the same interned sets. */
export function inventoryOf(state: NodeState): Inventory {
  let byPrevious = inventoryCache.get(state.active);
  if (!byPrevious) inventoryCache.set(state.active, (byPrevious = new WeakMap()));
  let inventory = byPrevious.get(state.previous);
  if (!inventory) byPrevious.set(state.previous, (inventory = { active: state.active.map(installedPackage), previous: state.previous.map(installedPackage), digest: setDigest(state.active) }));
  return inventory;
}

const packageIds = new WeakMap<StoredPackage, number>();
let nextPackageId = 0;
const internedSets = new Map<string, StoredPackage[]>();
const MAX_INTERNED_SETS = 4096;

/**
 * The one array holding exactly these package objects in this order. Sets are never changed in
 * place (every change makes a new array), so nodes reaching the same set share one array, and
 * what is derived from a set (its digest, inventory, running processes, analyses) is worked out
 * once for all of them instead of once per simulated node.
 */
export function internSet(set: StoredPackage[]): StoredPackage[] {
  let key = '';
  for (const p of set) {
    let id = packageIds.get(p);
    if (id === undefined) packageIds.set(p, (id = nextPackageId++));
    key += `${id},`;
  }
  const found = internedSets.get(key);
  if (found) return found;
  if (internedSets.size >= MAX_INTERNED_SETS) internedSets.clear();
  internedSets.set(key, set);
  return set;
}

/** The state with its three sets interned (after a load). */
export function internState(state: NodeState): NodeState {
  return { ...state, active: internSet(state.active), previous: internSet(state.previous), kept: internSet(state.kept) };
}

export const packageKey = (p: StoredPackage) => `${p.manifest.name}@${p.manifest.version}`;

/** The active set with `incoming` packages replacing those of the same name. */
export function mergeSet(active: StoredPackage[], incoming: StoredPackage[]): StoredPackage[] {
  const names = new Set(incoming.map((p) => p.manifest.name));
  return [...active.filter((p) => !names.has(p.manifest.name)), ...incoming];
}

/** Remembers package versions leaving the active/previous sets so a named regression finds them locally. */
export function keepVersions(kept: StoredPackage[], leaving: StoredPackage[], stillHeld: StoredPackage[]): StoredPackage[] {
  const held = new Set(stillHeld.map(packageKey));
  const byKey = new Map(kept.map((p) => [packageKey(p), p]));
  for (const p of leaving) if (!held.has(packageKey(p))) byKey.set(packageKey(p), p);
  for (const k of held) byKey.delete(k);
  return [...byKey.values()].slice(-MAX_KEPT);
}

export function upsertRecord(records: RolloutRecord[], record: RolloutRecord): RolloutRecord[] {
  const rest = records.filter((r) => r.rolloutId !== record.rolloutId);
  rest.push(record);
  return rest.slice(-MAX_RECORDS);
}

import { packageKey, type NodeState, type StoredPackage } from '../model/state.js';

// Which package versions and module files a node keeps on disk (issue 20, disk hygiene). Pure: the
// store's garbage collector saves the retained state first and only then deletes what it no longer
// references, so a crash in between leaves unreferenced files (removed by the next run), never a
// state that names a missing file.

/** Every package the node must keep whatever the setting: the active and previous sets and both sides of a changeover in progress. */
export function heldPackages(state: NodeState): StoredPackage[] {
  const j = state.journal;
  return [...state.active, ...state.previous, ...(j ? [...j.from.active, ...j.from.previous, ...j.to] : [])];
}

/**
 * The state with `kept` cut down so that each package has at most `keepVersions` versions on disk
 * besides its active one. Versions the active or previous set or a changeover in progress holds are
 * never dropped and count first (the previous set's version is the regression target); the most
 * recently replaced kept versions fill the rest. Returns the same state object when nothing goes.
 */
export function retainedState(state: NodeState, keepVersions: number): { state: NodeState; dropped: StoredPackage[] } {
  const held = heldPackages(state);
  const heldKeys = new Set(held.map(packageKey));
  const activeVersion = new Map(state.active.map((p) => [p.manifest.name, p.manifest.version]));
  // Versions already on disk per package besides the active one, counted from the held packages.
  const older = new Map<string, Set<string>>();
  const olderOf = (name: string) => older.get(name) ?? older.set(name, new Set()).get(name)!;
  for (const p of held) if (activeVersion.get(p.manifest.name) !== p.manifest.version) olderOf(p.manifest.name).add(p.manifest.version);
  const keep = new Set<StoredPackage>();
  const dropped: StoredPackage[] = [];
  // `kept` is ordered oldest first (keepVersions in model/state.ts appends): the newest are kept.
  for (let i = state.kept.length - 1; i >= 0; i--) {
    const p = state.kept[i]!;
    const versions = olderOf(p.manifest.name);
    if (heldKeys.has(packageKey(p)) || versions.has(p.manifest.version)) {
      keep.add(p);
      continue;
    }
    if (activeVersion.get(p.manifest.name) !== p.manifest.version && versions.size < keepVersions) {
      versions.add(p.manifest.version);
      keep.add(p);
    } else {
      dropped.push(p);
    }
  }
  if (!dropped.length) return { state, dropped };
  return { state: { ...state, kept: state.kept.filter((p) => keep.has(p)) }, dropped: dropped.reverse() };
}

/** The module digests a state references (every package it holds or keeps). */
export function referencedDigests(state: NodeState): Set<string> {
  const out = new Set<string>();
  for (const p of [...heldPackages(state), ...state.kept]) for (const m of p.modules) out.add(m.digest);
  return out;
}

const BLOB_NAME = /^[0-9a-f]{64}$/;

/**
 * The files of the modules directory to delete: blobs (64 hex digits, a sha256) that no digest in
 * `inUse` names. Anything else there (a temp file of a write in progress, a name this agent did not
 * write) is left alone.
 */
export function unreferencedBlobs(files: string[], inUse: Iterable<string>): string[] {
  const keep = new Set<string>();
  for (const d of inUse) keep.add(d.replace(/^sha256:/, ''));
  return files.filter((f) => BLOB_NAME.test(f) && !keep.has(f)).sort();
}

import { selectPackage, traitsKey, type Characteristics, type NodeTraits, type PackageManifest, type Signature } from '@changeover/contracts';
import type { StoredPackage } from '../model/state.js';

/**
 * The package as this node installs it: the modules the registry's selection picks for the node's
 * traits (processor type, OS, memory, disk, labels against every module's `requires`), or why the
 * package is unsupported here. The same pure function runs in the registry, so a commit installs
 * exactly the modules the proposal named.
 */
export function selectStored(manifest: PackageManifest, signature: Signature | undefined, node: NodeTraits): { ok: true; pkg: StoredPackage } | { ok: false; reason: string } {
  const r = selectPackage(manifest, node);
  if (!r.ok) return r;
  const byRef = new Map(manifest.modules.map((m) => [`${m.name}\n${m.processorType}\n${m.digest}`, m]));
  // selectPackage returns references of the manifest's own modules; the store keeps the full modules (run specs).
  const modules = r.selected.modules.map((ref) => byRef.get(`${ref.name}\n${ref.processorType}\n${ref.digest}`)!);
  return { ok: true, pkg: { manifest, signature, modules } };
}

type Selected = ReturnType<typeof selectStored>;
const selected = new WeakMap<PackageManifest, { signature: Signature | undefined; traits: string; result: Selected }[]>();

/**
 * selectStored, shared: a class broadcast hands every local node the same decoded manifest, so the
 * nodes with equal traits (the same `traits` key, see traitsKey) share one read-only stored package,
 * and the sets built from it can be interned.
 */
export function storedPackageFor(manifest: PackageManifest, signature: Signature | undefined, node: NodeTraits, traits: string = traitsKey(node)): Selected {
  let list = selected.get(manifest);
  if (!list) selected.set(manifest, (list = []));
  for (const e of list) if (e.signature === signature && e.traits === traits) return e.result;
  const result = selectStored(manifest, signature, node);
  if (list.length < 8) list.push({ signature, traits, result });
  return result;
}

const sharedTraits = new WeakMap<Characteristics, Map<string, { node: NodeTraits; key: string }>>();

/** A node's traits and their key; simulated nodes of one kind share their characteristics object, so the key is computed once for all of them. */
export function nodeTraits(processorType: NodeTraits['processorType'], characteristics: Characteristics): { node: NodeTraits; key: string } {
  let byType = sharedTraits.get(characteristics);
  if (!byType) sharedTraits.set(characteristics, (byType = new Map()));
  let t = byType.get(processorType);
  if (!t) {
    const node: NodeTraits = { processorType, characteristics };
    byType.set(processorType, (t = { node, key: traitsKey(node) }));
  }
  return t;
}

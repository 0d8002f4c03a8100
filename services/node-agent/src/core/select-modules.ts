import type { Module, PackageManifest, Signature } from '@changeover/contracts';
import type { StoredPackage } from '../model/state.js';

/** The manifest's modules for this processor type: a native build wins over an `any` one of the same name. */
export function selectModules(manifest: PackageManifest, processorType: 'x86_64' | 'arm64'): Module[] {
  const byName = new Map<string, Module>();
  for (const m of manifest.modules) {
    if (m.processorType !== 'any' && m.processorType !== processorType) continue;
    const seen = byName.get(m.name);
    if (!seen || (seen.processorType === 'any' && m.processorType === processorType)) byName.set(m.name, m);
  }
  return [...byName.values()];
}

const selected = new WeakMap<PackageManifest, { signature: Signature | undefined; processorType: 'x86_64' | 'arm64'; pkg: StoredPackage }[]>();

/**
 * The package as a node of this processor type stores it. A class broadcast hands every local node
 * the same decoded manifest, so the nodes of one type share one (read-only) stored package, and
 * the sets built from it can be interned.
 */
export function storedPackageFor(manifest: PackageManifest, signature: Signature | undefined, processorType: 'x86_64' | 'arm64'): StoredPackage {
  let list = selected.get(manifest);
  if (!list) selected.set(manifest, (list = []));
  for (const e of list) if (e.signature === signature && e.processorType === processorType) return e.pkg;
  const pkg: StoredPackage = { manifest, signature, modules: selectModules(manifest, processorType) };
  if (list.length < 8) list.push({ signature, processorType, pkg });
  return pkg;
}

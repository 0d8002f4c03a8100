import type { Module, PackageManifest } from '@changeover/contracts';

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

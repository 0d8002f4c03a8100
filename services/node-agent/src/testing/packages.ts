import { createHash } from 'node:crypto';
import type { Module, PackageManifest, SelectedPackage } from '@changeover/contracts';

// Builders for tests, the demo and the benchmark.

export const digestOf = (bytes: Uint8Array | string) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

export function moduleOf(name: string, version: string, content: string, extra: Partial<Module> = {}): Module {
  return { name, version, processorType: 'any', size: Buffer.byteLength(content), digest: digestOf(content), dependsOn: [], requires: {}, ...extra };
}

export function manifestOf(name: string, version: string, modules: Module[], extra: Partial<PackageManifest> = {}): PackageManifest {
  return { name, version, description: '', modules, requires: {}, provides: [], consumes: [], ...extra };
}

/** The proposal form of a manifest: identities and dependencies, no run specs. */
export function selectedOf(m: PackageManifest): SelectedPackage {
  return {
    name: m.name,
    version: m.version,
    modules: m.modules.map((x) => ({ name: x.name, version: x.version, digest: x.digest, processorType: x.processorType, size: x.size, dependsOn: x.dependsOn })),
    requires: m.requires,
    provides: m.provides,
    consumes: m.consumes,
  };
}

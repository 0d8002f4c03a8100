import { createHash } from 'node:crypto';
import { canonicalJson, type Characteristics, type Module, type ModuleRef, type PackageManifest, type ProcessorType, type Requirements, type SelectedPackage } from './domain.js';

// Module selection (claim 3): pure functions of a package set and a node's characteristics. The
// registry selects with them for every node, and the agent applies the same selection at commit.

export interface NodeTraits {
  processorType: Exclude<ProcessorType, 'any'>;
  characteristics: Characteristics;
}

export interface Unsupported {
  package: string;
  reason: string;
}

export type NodeSelection = { ok: true; packages: SelectedPackage[]; selectionId: string } | { ok: false; unsupported: Unsupported[] };

/** Why `requires` does not hold on a node, or null when it does. */
export function unmetRequirement(req: Requirements, c: Characteristics): string | null {
  if (req.os && req.os.length > 0 && !req.os.includes(c.os)) return `needs os ${req.os.join('|')}, node has ${c.os}`;
  if (req.minMemoryMb !== undefined && c.memoryMb < req.minMemoryMb) return `needs ${req.minMemoryMb} MB memory, node has ${c.memoryMb}`;
  if (req.minDiskMb !== undefined && (c.diskMb ?? 0) < req.minDiskMb) return `needs ${req.minDiskMb} MB disk, node has ${c.diskMb ?? 0}`;
  for (const [key, value] of Object.entries(req.labels ?? {})) {
    if (c.labels[key] !== value) return `needs label ${key}=${value}`;
  }
  return null;
}

const toRef = (m: Module): ModuleRef => ({ name: m.name, version: m.version, digest: m.digest, processorType: m.processorType, size: m.size, dependsOn: m.dependsOn });

/**
 * Picks, for every module name of the package, the variant for this node: processor type equal
 * (preferred) or `any`, with every requirement met. A module name without such a variant makes
 * the whole package unsupported on the node.
 */
export function selectPackage(manifest: PackageManifest, node: NodeTraits): { ok: true; selected: SelectedPackage } | { ok: false; reason: string } {
  const byName = new Map<string, Module[]>();
  for (const m of manifest.modules) byName.set(m.name, [...(byName.get(m.name) ?? []), m]);
  const chosen: ModuleRef[] = [];
  for (const [name, variants] of byName) {
    const forCpu = variants.filter((m) => m.processorType === node.processorType || m.processorType === 'any');
    if (forCpu.length === 0) return { ok: false, reason: `no module ${name} for processor type ${node.processorType} (has ${variants.map((m) => m.processorType).join(', ')})` };
    const fitting = forCpu.filter((m) => unmetRequirement(m.requires, node.characteristics) === null);
    // Every build's unmet requirement, so the reason names what any of them would need.
    if (fitting.length === 0) return { ok: false, reason: `module ${name}: ${[...new Set(forCpu.map((m) => unmetRequirement(m.requires, node.characteristics)))].join('; or ')}` };
    const exact = fitting.find((m) => m.processorType === node.processorType);
    chosen.push(toRef(exact ?? fitting[0]!));
  }
  return {
    ok: true,
    selected: { name: manifest.name, version: manifest.version, modules: chosen, requires: manifest.requires, provides: manifest.provides, consumes: manifest.consumes },
  };
}

/** The selection for one node over a package set, with its id (sha256 of the canonical JSON). */
export function selectForNode(manifests: readonly PackageManifest[], node: NodeTraits): NodeSelection {
  const packages: SelectedPackage[] = [];
  const unsupported: Unsupported[] = [];
  for (const manifest of manifests) {
    const r = selectPackage(manifest, node);
    if (r.ok) packages.push(r.selected);
    else unsupported.push({ package: `${manifest.name}@${manifest.version}`, reason: r.reason });
  }
  if (unsupported.length > 0) return { ok: false, unsupported };
  return { ok: true, packages, selectionId: selectionId(packages) };
}

export const selectionId = (packages: readonly SelectedPackage[]) => `sha256:${createHash('sha256').update(canonicalJson(packages)).digest('hex')}`;

/** Nodes with equal traits get equal selections: the key lets a batch compute each selection once. */
export const traitsKey = (node: NodeTraits) => canonicalJson([node.processorType, node.characteristics]);

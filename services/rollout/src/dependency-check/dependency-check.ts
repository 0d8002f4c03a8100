import semver from 'semver';
import type { Discrepancy, Inventory, SelectedPackage } from '@changeover/contracts';

export interface CheckedNode {
  nodeId: string;
  inventory: Inventory;
  /** What the rollout sent this node (module dependencies come from here). */
  selected: readonly SelectedPackage[];
}

const splitApi = (api: string) => {
  const at = api.indexOf('@');
  return { name: api.slice(0, at), version: api.slice(at + 1) };
};

/** The consumed APIs (`api@range`) the checked nodes leave unprovided: what to ask the rest of the fleet about. */
export function unprovidedApis(nodes: readonly CheckedNode[]): string[] {
  return [...new Set(checkDependencies(nodes).flatMap((d) => (d.kind === 'API_UNPROVIDED' ? [d.missing] : [])))].sort();
}

/**
 * Claims 9–10: intra-node (package `requires`, module `dependsOn`) and inter-node (every consumed
 * API provided by an active node in scope) checks over the nodes' reported inventories.
 */
export function checkDependencies(nodes: readonly CheckedNode[], elsewhere: readonly string[] = []): Discrepancy[] {
  const out: Discrepancy[] = [];
  // API name → versions provided by any node in scope: the checked nodes, and `elsewhere` (the
  // `api@version` the rest of the fleet's active nodes provide, as the registry knows them).
  const provided = new Map<string, Set<string>>();
  const add = (api: string) => {
    const { name, version } = splitApi(api);
    if (!provided.has(name)) provided.set(name, new Set());
    provided.get(name)!.add(version);
  };
  elsewhere.forEach(add);
  for (const n of nodes) {
    for (const p of n.inventory.active) p.provides.forEach(add);
  }
  for (const n of nodes) {
    const active = new Map(n.inventory.active.map((p) => [p.name, p]));
    const modules = new Set(n.inventory.active.flatMap((p) => p.modules.map((m) => m.name)));
    for (const p of n.inventory.active) {
      for (const [name, range] of Object.entries(p.requires)) {
        const have = active.get(name);
        if (!have || !semver.satisfies(have.version, range, { includePrerelease: true })) {
          out.push({ kind: 'PACKAGE_REQUIREMENT', nodeId: n.nodeId, package: `${p.name}@${p.version}`, missing: `${name}@${range}`, message: have ? `${p.name} requires ${name} ${range} but the node runs ${name}@${have.version}` : `${p.name} requires ${name} ${range} which is not installed` });
        }
      }
      for (const api of p.consumes) {
        const { name, version: range } = splitApi(api);
        const versions = provided.get(name);
        const ok = versions && [...versions].some((v) => semver.satisfies(v, range, { includePrerelease: true }));
        if (!ok) out.push({ kind: 'API_UNPROVIDED', nodeId: n.nodeId, package: `${p.name}@${p.version}`, missing: api, message: `${p.name} consumes ${api} but no active node in scope provides it` });
      }
    }
    for (const p of n.selected) {
      for (const m of p.modules) {
        for (const dep of m.dependsOn) {
          if (!modules.has(dep)) out.push({ kind: 'MODULE_DEPENDENCY', nodeId: n.nodeId, package: `${p.name}@${p.version}`, missing: dep, message: `module ${m.name} depends on module ${dep} which is not active on the node` });
        }
      }
    }
  }
  return out;
}

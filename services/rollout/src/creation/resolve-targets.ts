import { ChangeoverError, type Assignment, type SoftwareUpdate } from '@changeover/contracts';
import type { RegistryPort } from '../nats/registry-client.js';

export interface Resolved {
  assignments: Assignment[];
  unsupported: { nodeId: string; package: string; processorType: 'x86_64' | 'arm64' | 'any' }[];
}

/**
 * Resolves each target (nodes or classes, with its own packages: claims 21–23) through the
 * registry's module selection (claim 3). Refuses unknown nodes, an empty target set, a node
 * named by two targets, and a node for which no package has a module.
 */
export async function resolveTargets(registry: RegistryPort, update: SoftwareUpdate, strict = true): Promise<Resolved> {
  const assignments: Assignment[] = [];
  const unsupported: Resolved['unsupported'] = [];
  const seen = new Map<string, number>();
  const unknown: string[] = [];
  // Why each node has no module for a package (the registry's words), for the refusal.
  const reasons: string[] = [];
  for (const [t, target] of update.targets.entries()) {
    const reply = await registry.selectModules('nodes' in target ? { packages: target.packages, nodes: target.nodes } : { packages: target.packages, classes: target.classes });
    unknown.push(...reply.unknownNodes);
    for (const a of reply.assignments) {
      for (const n of a.nodes) {
        if (seen.has(n)) throw new ChangeoverError('VALIDATION_FAILED', `node ${n} is named by targets ${seen.get(n)} and ${t}: give each node one package set`, { nodeId: n });
        seen.set(n, t);
      }
      if (a.nodes.length) assignments.push({ ...a, selectionId: `${t}-${a.selectionId}`.slice(0, 128) });
    }
    for (const u of reply.unsupported) {
      unsupported.push({ nodeId: u.nodeId, package: u.package, processorType: u.processorType });
      reasons.push(u.reason);
    }
  }
  if (unknown.length) throw new ChangeoverError('NOT_FOUND', `unknown node(s): ${unknown.slice(0, 20).join(', ')}`, { nodes: unknown.slice(0, 1000) });
  const served = new Set(assignments.filter((a) => a.packages.some((p) => p.modules.length > 0)).flatMap((a) => a.nodes));
  const nothing = [...new Set(unsupported.map((u) => u.nodeId))].filter((n) => !served.has(n));
  if (nothing.length && strict) {
    const first = unsupported.find((u) => u.nodeId === nothing[0])!;
    const reason = reasons[unsupported.indexOf(first)];
    const refused = new Set(nothing);
    throw new ChangeoverError('PROCESSOR_UNSUPPORTED', `no module of the update matches node(s) ${nothing.slice(0, 20).join(', ')} (e.g. ${first.package} for ${first.processorType}${reason ? `: ${reason}` : ''})`, {
      nodes: nothing.slice(0, 1000),
      unsupported: unsupported.flatMap((u, i) => (refused.has(u.nodeId) ? [{ ...u, reason: reasons[i] }] : [])).slice(0, 1000),
    });
  }
  const total = assignments.reduce((n, a) => n + a.nodes.length, 0);
  if (total === 0) throw new ChangeoverError('VALIDATION_FAILED', 'the update targets no node (empty target set)');
  return { assignments, unsupported };
}

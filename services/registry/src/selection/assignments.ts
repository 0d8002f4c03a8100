import type { PackageManifest, SelectModulesReply } from '@changeover/contracts';
import { selectForNode, traitsKey, type NodeSelection, type NodeTraits } from './module.selector.js';

export interface SelectableNode extends NodeTraits {
  nodeId: string;
  classId: string;
  /** traitsKey(node) when the caller has it already (one per distinct node, not per node). */
  traits?: string;
}

export interface AssignmentInput {
  manifests: readonly PackageManifest[];
  /** Whole classes asked for, with every node of each. */
  classes: ReadonlyMap<string, readonly SelectableNode[]>;
  /** Nodes asked for one by one (known ones). */
  nodes: readonly SelectableNode[];
  unknownNodes: readonly string[];
}

/**
 * Groups nodes by identical selection (claim 3, DESIGN §5 step 1): a class whose every node gets
 * the same selection becomes one assignment with `classId` (a class broadcast); other nodes are
 * grouped by selection id. Nodes with an unsupported package get no assignment.
 */
export function buildAssignments(input: AssignmentInput): SelectModulesReply {
  const cache = new Map<string, NodeSelection>();
  const select = (n: SelectableNode) => {
    const key = n.traits ?? traitsKey(n);
    let s = cache.get(key);
    if (!s) cache.set(key, (s = selectForNode(input.manifests, n)));
    return s;
  };
  const reply: SelectModulesReply = { assignments: [], unsupported: [], unknownNodes: [...input.unknownNodes] };
  const covered = new Set<string>();
  const loose: SelectableNode[] = [];
  for (const [classId, members] of input.classes) {
    const selections = members.map(select);
    const first = selections[0];
    const uniform = first?.ok === true && selections.every((s) => s.ok && s.selectionId === first.selectionId);
    if (uniform && first.ok) {
      reply.assignments.push({ selectionId: first.selectionId, packages: first.packages, nodes: members.map((n) => n.nodeId), classId });
      for (const n of members) covered.add(n.nodeId);
    } else loose.push(...members);
  }
  loose.push(...input.nodes);
  const groups = new Map<string, { packages: NodeSelection & { ok: true }; nodes: string[] }>();
  for (const n of loose) {
    if (covered.has(n.nodeId)) continue;
    covered.add(n.nodeId);
    const s = select(n);
    if (!s.ok) {
      for (const u of s.unsupported) reply.unsupported.push({ nodeId: n.nodeId, package: u.package, processorType: n.processorType, reason: u.reason });
      continue;
    }
    const g = groups.get(s.selectionId);
    if (g) g.nodes.push(n.nodeId);
    else groups.set(s.selectionId, { packages: s, nodes: [n.nodeId] });
  }
  for (const [id, g] of groups) reply.assignments.push({ selectionId: id, packages: g.packages.packages, nodes: g.nodes });
  return reply;
}

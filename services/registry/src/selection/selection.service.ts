import type { Characteristics, SelectModulesReply, SelectModulesRequest } from '@changeover/contracts';
import type { NodeRepository, SelectableRow } from '../nodes/node.repository.js';
import type { PackageService } from '../packages/package.service.js';
import { buildAssignments, type SelectableNode } from './assignments.js';
import { traitsKey } from './module.selector.js';

/** Rows to selectable nodes; nodes whose traits are equal share one characteristics object and one traits key. */
function selectables(): (r: SelectableRow) => SelectableNode {
  const seen = new Map<string, { characteristics: Characteristics; traits: string }>();
  return (r) => {
    const key = `${r.processor_type}\n${r.characteristics_json}`;
    let t = seen.get(key);
    if (!t) {
      const characteristics = JSON.parse(r.characteristics_json) as Characteristics;
      seen.set(key, (t = { characteristics, traits: traitsKey({ processorType: r.processor_type, characteristics }) }));
    }
    return { nodeId: r.node_id, classId: r.class_id, processorType: r.processor_type, characteristics: t.characteristics, traits: t.traits };
  };
}

/** Loads what module selection needs (manifests, nodes) and hands it to the pure selector. */
export class SelectionService {
  constructor(
    private readonly packages: PackageService,
    private readonly nodes: NodeRepository,
  ) {}

  async select(req: SelectModulesRequest): Promise<SelectModulesReply> {
    const { packages } = await this.packages.getPackages(req.packages);
    const selectable = selectables();
    const classRows = await this.nodes.selectableByClasses(req.classes);
    const classes = new Map<string, SelectableNode[]>(req.classes.map((c) => [c, []]));
    for (const r of classRows) classes.get(r.class_id)?.push(selectable(r));
    const listed = [...new Set(req.nodes)];
    const found = await this.nodes.selectableByIds(listed);
    const known = new Set(found.map((r) => r.node_id));
    return buildAssignments({
      manifests: packages.map((p) => p.manifest),
      classes,
      nodes: found.map(selectable),
      unknownNodes: listed.filter((id) => !known.has(id)),
    });
  }
}

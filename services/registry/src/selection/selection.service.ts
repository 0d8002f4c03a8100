import type { SelectModulesReply, SelectModulesRequest } from '@changeover/contracts';
import type { NodeRepository, NodeRowData } from '../nodes/node.repository.js';
import type { PackageService } from '../packages/package.service.js';
import { buildAssignments, type SelectableNode } from './assignments.js';

const selectable = (r: NodeRowData): SelectableNode => ({ nodeId: r.node_id, classId: r.class_id, processorType: r.processor_type, characteristics: r.characteristics });

/** Loads what module selection needs (manifests, nodes) and hands it to the pure selector. */
export class SelectionService {
  constructor(
    private readonly packages: PackageService,
    private readonly nodes: NodeRepository,
  ) {}

  async select(req: SelectModulesRequest): Promise<SelectModulesReply> {
    const { packages } = await this.packages.getPackages(req.packages);
    const classRows = await this.nodes.byClasses(req.classes);
    const classes = new Map<string, SelectableNode[]>(req.classes.map((c) => [c, []]));
    for (const r of classRows) classes.get(r.class_id)?.push(selectable(r));
    const listed = [...new Set(req.nodes)];
    const found = await this.nodes.byIds(listed);
    const known = new Set(found.map((r) => r.node_id));
    return buildAssignments({
      manifests: packages.map((p) => p.manifest),
      classes,
      nodes: found.map(selectable),
      unknownNodes: listed.filter((id) => !known.has(id)),
    });
  }
}

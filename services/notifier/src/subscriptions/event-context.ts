import { severityOf, type EventType, type Severity } from '@changeover/contracts';

/** What a subscription filter looks at: facts named by the event, widened with what the notifier learnt of nodes and rollouts. */
export interface EventContext {
  type: EventType;
  severity: Severity;
  rolloutId?: string;
  nodeIds: string[];
  classIds: string[];
  /** The labels of each node the event concerns (when the notifier knows the node). */
  nodeLabels: Record<string, string>[];
}

const MAX_NODES = 10_000;

/** Collects the node and class ids an event's data names, wherever they sit in its schema. */
export function eventFacts(type: EventType, data: unknown): Omit<EventContext, 'nodeLabels'> {
  const nodes = new Set<string>();
  const classes = new Set<string>();
  let rolloutId: string | undefined;
  const visit = (value: unknown, key: string | undefined, depth: number): void => {
    if (depth > 4 || nodes.size >= MAX_NODES || value === null || typeof value !== 'object') return;
    if (Array.isArray(value)) {
      // `nodes` and `nodeIds` hold ids; the other arrays hold objects worth looking into.
      for (const item of value) if ((key === 'nodes' || key === 'nodeIds') && typeof item === 'string') nodes.add(item);
      else visit(item, undefined, depth + 1);
      return;
    }
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (k === 'nodeId' && typeof v === 'string') nodes.add(v);
      else if (k === 'classId' && typeof v === 'string') classes.add(v);
      else if (k === 'rolloutId' && typeof v === 'string' && depth === 0) rolloutId = v;
      else if (k !== 'inventory' && k !== 'update' && k !== 'packages') visit(v, k, depth + 1);
    }
  };
  visit(data, undefined, 0);
  return { type, severity: severityOf(type), ...(rolloutId ? { rolloutId } : {}), nodeIds: [...nodes], classIds: [...classes] };
}

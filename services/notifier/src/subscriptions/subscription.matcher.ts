import { DEFAULT_NOTIFIED_EVENTS, type Severity, type SubscriptionFilter } from '@changeover/contracts';
import type { EventContext } from './event-context.js';

const RANK: Record<Severity, number> = { info: 0, warning: 1, critical: 2 };

/** Whether a subscription's filter selects an event: every given field must match. */
export function matches(filter: SubscriptionFilter, ctx: EventContext): boolean {
  const types: readonly string[] = filter.eventTypes ?? DEFAULT_NOTIFIED_EVENTS;
  if (!types.includes('*') && !types.includes(ctx.type)) return false;
  if (filter.minSeverity && RANK[ctx.severity] < RANK[filter.minSeverity]) return false;
  if (filter.rolloutIds && (!ctx.rolloutId || !filter.rolloutIds.includes(ctx.rolloutId))) return false;
  if (filter.classIds && !ctx.classIds.some((c) => filter.classIds!.includes(c))) return false;
  if (filter.labels) {
    const wanted = Object.entries(filter.labels);
    if (!ctx.nodeLabels.some((labels) => wanted.every(([k, v]) => labels[k] === v))) return false;
  }
  return true;
}

/** Whether matching needs what the notifier knows of nodes (a class or label filter). */
export const needsNodeFacts = (filter: SubscriptionFilter) => Boolean(filter.classIds || filter.labels);

import { NODE_LIST_CHUNK } from '@changeover/contracts';
import type { RolloutEventOf, RolloutEvent } from './rollout.events.js';

/**
 * Characters of JSON one merged event may hold: half the event store's per-event limit, so that
 * metadata and estimation error never push it over.
 */
export const MERGED_EVENT_BUDGET = 256 * 1024;

type Votes = RolloutEventOf<'rollout.votes-recorded'>;
type Completions = RolloutEventOf<'rollout.nodes-completed'>;

/**
 * Merges runs of adjacent per-node events of one decided batch into as few events as fit
 * (`votes-recorded` of one attempt; `nodes-completed`, each distinct inventory listed once), at
 * most NODE_LIST_CHUNK nodes and MERGED_EVENT_BUDGET characters each. Folding the result gives
 * the same state as folding the input: only adjacent events merge, in order. 10,000 votes become
 * a handful of events instead of 10,000 rows, relayed messages and stream entries.
 * The input is not modified.
 */
export function coalesce(events: readonly RolloutEvent[]): RolloutEvent[] {
  const out: RolloutEvent[] = [];
  let votes: { event: Votes; size: number } | null = null;
  let completions: { event: Completions; size: number; inventories: Map<string, number> } | null = null;
  for (const e of events) {
    if (e.type === 'rollout.votes-recorded') {
      completions = null;
      const size = e.data.votes.reduce((n, v) => n + JSON.stringify(v).length + 1, 0);
      const open = votes;
      if (open && open.event.data.attempt === e.data.attempt && open.event.data.rolloutId === e.data.rolloutId && open.event.data.votes.length + e.data.votes.length <= NODE_LIST_CHUNK && open.size + size <= MERGED_EVENT_BUDGET) {
        open.event.data.votes.push(...e.data.votes);
        open.event.data.at = e.data.at;
        open.size += size;
        continue;
      }
      const event: Votes = { type: e.type, data: { ...e.data, votes: [...e.data.votes] } };
      votes = { event, size };
      out.push(event);
      continue;
    }
    if (e.type === 'rollout.nodes-completed') {
      votes = null;
      const open = completions;
      if (open && open.event.data.rolloutId === e.data.rolloutId && open.event.data.nodes.length + e.data.nodes.length <= NODE_LIST_CHUNK && appendCompletions(open, e)) continue;
      const started = { event: { type: e.type, data: { ...e.data, nodes: [], inventories: [] } } as Completions, size: 0, inventories: new Map<string, number>() };
      appendCompletions(started, e, true);
      completions = started;
      out.push(started.event);
      continue;
    }
    votes = null;
    completions = null;
    out.push(e);
  }
  return out;
}

/** Adds one event's completions to an open merged event, if they fit (always, when `force`). */
function appendCompletions(open: { event: Completions; size: number; inventories: Map<string, number> }, e: Completions, force = false): boolean {
  // Each of the event's inventories: its key, and whether the open event lists it already.
  const keys = e.data.inventories.map((inv) => JSON.stringify(inv));
  let size = 0;
  const fresh = new Set<string>();
  for (const key of keys) {
    if (open.inventories.has(key) || fresh.has(key)) continue;
    fresh.add(key);
    size += key.length + 1;
  }
  for (const n of e.data.nodes) size += n.nodeId.length + 64;
  if (!force && open.size + size > MERGED_EVENT_BUDGET) return false;
  const index = keys.map((key, i) => {
    let at = open.inventories.get(key);
    if (at === undefined) {
      at = open.event.data.inventories.length;
      open.inventories.set(key, at);
      open.event.data.inventories.push(e.data.inventories[i]!);
    }
    return at;
  });
  for (const n of e.data.nodes) {
    const at = index[n.inventory];
    if (at !== undefined) open.event.data.nodes.push({ ...n, inventory: at });
  }
  open.event.data.at = e.data.at;
  open.size += size;
  return true;
}

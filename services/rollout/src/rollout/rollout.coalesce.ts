import { jsonEqual, NODE_LIST_CHUNK, type Inventory } from '@changeover/contracts';
import type { RolloutEventOf, RolloutEvent } from './rollout.events.js';

/**
 * Characters of JSON one merged event may hold: half the event store's per-event limit, so that
 * metadata and estimation error never push it over.
 */
export const MERGED_EVENT_BUDGET = 256 * 1024;

type Votes = RolloutEventOf<'rollout.votes-recorded'>;
type Completions = RolloutEventOf<'rollout.nodes-completed'>;
/** A merged completions event being filled: its inventories' indexes by digest. */
interface OpenCompletions {
  event: Completions;
  size: number;
  byDigest: Map<string, number[]>;
}

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
  let completions: OpenCompletions | null = null;
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
      const started: OpenCompletions = { event: { type: e.type, data: { ...e.data, nodes: [], inventories: [] } } as Completions, size: 0, byDigest: new Map() };
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
function appendCompletions(open: OpenCompletions, e: Completions, force = false): boolean {
  // Each of the event's inventories: where the open event lists it already, or that it is new.
  const found = e.data.inventories.map((inv) => indexOf(open, inv));
  let size = 0;
  found.forEach((at, i) => {
    if (at === undefined) size += JSON.stringify(e.data.inventories[i]).length + 1;
  });
  for (const n of e.data.nodes) size += n.nodeId.length + 64;
  if (!force && open.size + size > MERGED_EVENT_BUDGET) return false;
  const index = found.map((at, i) => {
    if (at !== undefined) return at;
    const inv = e.data.inventories[i]!;
    const added = open.event.data.inventories.push(inv) - 1;
    const same = open.byDigest.get(inv.digest);
    if (same) same.push(added);
    else open.byDigest.set(inv.digest, [added]);
    return added;
  });
  for (const n of e.data.nodes) {
    const at = index[n.inventory];
    if (at !== undefined) open.event.data.nodes.push({ ...n, inventory: at });
  }
  open.event.data.at = e.data.at;
  open.size += size;
  return true;
}

/**
 * The index of an equal inventory the open event lists. Candidates share the digest; equality is
 * checked on the content, so a node reporting a wrong digest never gets another node's inventory.
 */
function indexOf(open: OpenCompletions, inv: Inventory): number | undefined {
  for (const at of open.byDigest.get(inv.digest) ?? []) if (jsonEqual(open.event.data.inventories[at], inv)) return at;
  return undefined;
}

import type { PreparedEvent } from '../validation/input.validate.js';
import type { ExpectedVersion } from '../types.js';
import { matchesExpectedVersion, versionConflict } from './expected-version.js';
import type { ChangeoverError } from '@changeover/contracts';

export interface AppendRequest {
  streamId: string;
  expected: ExpectedVersion;
  events: PreparedEvent[];
}

/** The rows one batch inserts, as parallel arrays (one UNNEST per column). */
export interface EventRows {
  streamIds: string[];
  positions: number[];
  ids: string[];
  types: string[];
  data: string[];
  metadata: string[];
}

export type PlannedAppend = { ok: true; firstPosition: number; lastPosition: number; rowOffset: number } | { ok: false; error: ChangeoverError };

/**
 * Decides, in queue order, which appends of a batch go in: each is checked against the stream's
 * version including the earlier accepted appends of the same batch. Pure, so it is unit-tested.
 */
export function planBatch(requests: readonly AppendRequest[], versions: ReadonlyMap<string, number>): { plans: PlannedAppend[]; rows: EventRows } {
  const current = new Map(versions);
  const rows: EventRows = { streamIds: [], positions: [], ids: [], types: [], data: [], metadata: [] };
  const plans = requests.map((req): PlannedAppend => {
    const actual = current.get(req.streamId) ?? 0;
    if (!matchesExpectedVersion(req.expected, actual)) return { ok: false, error: versionConflict(req.streamId, req.expected, actual) };
    const rowOffset = rows.ids.length;
    req.events.forEach((e, i) => {
      rows.streamIds.push(req.streamId);
      rows.positions.push(actual + i + 1);
      rows.ids.push(e.id);
      rows.types.push(e.type);
      rows.data.push(e.data);
      rows.metadata.push(e.metadata);
    });
    const lastPosition = actual + req.events.length;
    current.set(req.streamId, lastPosition);
    return { ok: true, firstPosition: actual + 1, lastPosition, rowOffset };
  });
  return { plans, rows };
}

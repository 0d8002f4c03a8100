import type { AppendRequest } from './append-plan.js';

/**
 * Last versions this process committed, so most batches skip the version read. Safe because
 * versions only grow: a stale entry makes the INSERT hit the (stream_id, stream_position) key,
 * and the batch is retried with versions read from the table.
 */
export class StreamVersionCache {
  private readonly versions = new Map<string, number>();

  constructor(private readonly maxStreams = 100_000) {}

  get(streamId: string): number | undefined {
    return this.versions.get(streamId);
  }

  set(streamId: string, version: number): void {
    this.versions.delete(streamId); // re-insert: the Map's order is the eviction order
    this.versions.set(streamId, version);
    if (this.versions.size > this.maxStreams) {
      const drop = Math.ceil(this.maxStreams / 10);
      let n = 0;
      for (const key of this.versions.keys()) {
        if (n++ >= drop) break;
        this.versions.delete(key);
      }
    }
  }

  forget(streamIds: Iterable<string>): void {
    for (const id of streamIds) this.versions.delete(id);
  }

  get size(): number {
    return this.versions.size;
  }
}

/**
 * Which versions a batch can assume and which it must read: a cached version is trusted unless
 * the caller expects a higher one (then the cache is provably stale); a stream expected not to
 * exist is assumed at 0 (the unique key catches it if it does).
 */
export function versionsToRead(requests: readonly AppendRequest[], cache: StreamVersionCache | undefined): { assumed: Map<string, number>; read: string[] } {
  const assumed = new Map<string, number>();
  const read = new Set<string>();
  for (const r of requests) {
    if (assumed.has(r.streamId) || read.has(r.streamId)) continue;
    const cached = cache?.get(r.streamId);
    if (cached !== undefined && !(typeof r.expected === 'number' && r.expected > cached)) assumed.set(r.streamId, cached);
    else if (cache && cached === undefined && (r.expected === 0 || r.expected === 'no-stream')) assumed.set(r.streamId, 0);
    else read.add(r.streamId);
  }
  return { assumed, read: [...read] };
}

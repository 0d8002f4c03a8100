import pg from 'pg';
import { PG_CONNECT_TIMEOUT_MS, pgConnection, survivesRestarts } from '@changeover/event-store';
import { rolloutStreamId } from '../rollout/rollout.events.js';
import { TERMINAL_STATUSES } from '../rollout/rollout.state.js';

/** Rollouts a service instance may hold the lock of a node's reconcile for at once (each holds one connection meanwhile). */
const LOCK_CONNECTIONS = 4;

/**
 * The unfinished rollouts of every instance, as Postgres holds them, and a per-node lock that
 * serialises reconciles across instances. A rollout is unfinished while its lease row exists (from
 * before its first append until its owner is done) and its projection row, if written yet, is not
 * terminal. Its nodes are fixed at creation (`rollout.created` and the `rollout.nodes-added` of the
 * same append), so each rollout's node set is read once and kept while it is unfinished.
 */
export class ClusterRollouts {
  private readonly nodeSets = new Map<string, ReadonlySet<string>>();
  private readonly locks: pg.Pool;

  constructor(
    private readonly pool: pg.Pool,
    databaseUrl: string,
  ) {
    // Own connections: a lock held while a rollout is created must not take one the append needs. Built like
    // every other pool (a multi-host DATABASE_URL follows the primary; a dropped connection crashes nothing).
    this.locks = survivesRestarts(new pg.Pool({ ...pgConnection(databaseUrl), max: LOCK_CONNECTIONS, idleTimeoutMillis: 30_000, connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS }));
  }

  /** The id of an unfinished rollout (of any instance) that has the node, else null. */
  async covering(nodeId: string): Promise<string | null> {
    const r = await this.pool.query<{ id: string }>(
      `SELECT l.rollout_id AS id FROM rollout_leases l LEFT JOIN rollouts r ON r.id = l.rollout_id
       WHERE r.status IS NULL OR NOT (r.status = ANY($1::text[])) ORDER BY l.rollout_id`,
      [TERMINAL_STATUSES],
    );
    const ids = r.rows.map((x) => x.id);
    const unfinished = new Set(ids);
    for (const id of this.nodeSets.keys()) if (!unfinished.has(id)) this.nodeSets.delete(id);
    for (const id of ids) if ((await this.nodesOf(id))?.has(nodeId)) return id;
    return null;
  }

  /**
   * Runs `work` holding the node's reconcile lock, a session advisory lock every instance takes for the
   * same node: the check for a covering rollout and the creation it allows are one step cluster-wide.
   * An instance that dies holding it loses its session, and the lock with it.
   */
  async exclusive<T>(nodeId: string, work: () => Promise<T>): Promise<T> {
    const client = await this.locks.connect();
    const key = `changeover:reconcile:${nodeId}`;
    let broken: Error | undefined;
    try {
      await client.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [key]);
      try {
        return await work();
      } finally {
        await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [key]).catch((e: Error) => (broken = e));
      }
    } catch (e) {
      broken ??= e instanceof Error ? e : new Error(String(e));
      throw e;
    } finally {
      // A connection whose unlock failed (or whose lock wait was cancelled) is closed, not reused: its lock dies with it.
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    await this.locks.end();
  }

  /** The rollout's nodes; undefined while its first append is not visible yet (its lease is claimed before). */
  private async nodesOf(id: string): Promise<ReadonlySet<string> | undefined> {
    const kept = this.nodeSets.get(id);
    if (kept) return kept;
    const r = await this.pool.query<{ node: string }>(
      `SELECT n.node FROM events e,
         LATERAL (SELECT jsonb_array_elements_text(a -> 'nodes') FROM jsonb_array_elements(CASE WHEN e.event_type = 'rollout.created' THEN e.data -> 'assignments' ELSE '[]'::jsonb END) a
                  UNION ALL SELECT jsonb_array_elements_text(CASE WHEN e.event_type = 'rollout.nodes-added' THEN e.data -> 'nodes' ELSE '[]'::jsonb END)) n(node)
       WHERE e.stream_id = $1 AND e.event_type IN ('rollout.created', 'rollout.nodes-added')`,
      [rolloutStreamId(id)],
    );
    // Every rollout has a node, and its node events are one append: none means it is not visible yet.
    if (r.rows.length === 0) return undefined;
    const nodes = new Set(r.rows.map((x) => x.node));
    this.nodeSets.set(id, nodes);
    return nodes;
  }
}

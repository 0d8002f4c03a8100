import type pg from 'pg';

/** Which instance owns which rollout: a row per live rollout in rollout_leases, renewed while owned. */
export class LeaseStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly owner: string,
    private readonly leaseMs: number,
  ) {}

  /** Takes the lease if free, expired, or already ours. */
  async acquire(rolloutId: string): Promise<boolean> {
    const r = await this.pool.query(
      `INSERT INTO rollout_leases (rollout_id, owner, expires_at) VALUES ($1, $2, now() + $3 * interval '1 millisecond')
       ON CONFLICT (rollout_id) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
       WHERE rollout_leases.expires_at < now() OR rollout_leases.owner = EXCLUDED.owner
       RETURNING rollout_id`,
      [rolloutId, this.owner, this.leaseMs],
    );
    return r.rowCount === 1;
  }

  /** Extends our leases; returns the ones we still hold (a missing one was taken over). */
  async renew(rolloutIds: string[]): Promise<Set<string>> {
    if (rolloutIds.length === 0) return new Set();
    const r = await this.pool.query<{ rollout_id: string }>(
      `UPDATE rollout_leases SET expires_at = now() + $3 * interval '1 millisecond' WHERE owner = $1 AND rollout_id = ANY($2) RETURNING rollout_id`,
      [this.owner, rolloutIds, this.leaseMs],
    );
    return new Set(r.rows.map((x) => x.rollout_id));
  }

  /** Rollouts whose lease expired (their owner died or never was), and ours from before a restart. */
  async expired(limit = 100): Promise<string[]> {
    const r = await this.pool.query<{ rollout_id: string }>(`SELECT rollout_id FROM rollout_leases WHERE expires_at < now() OR owner = $2 ORDER BY expires_at LIMIT $1`, [limit, this.owner]);
    return r.rows.map((x) => x.rollout_id);
  }

  /** Makes sure someone will own the rollout: an unowned, already expired row, or one this instance holds. */
  async ensure(rolloutId: string, opts: { claim?: boolean } = {}): Promise<void> {
    // Claimed (a rollout being created here): ours until it expires, so another instance does not adopt it
    // between the creator's first append and its acquire; if the creator dies, the lease expires as any.
    if (opts.claim) {
      await this.pool.query(`INSERT INTO rollout_leases (rollout_id, owner, expires_at) VALUES ($1, $2, now() + $3 * interval '1 millisecond') ON CONFLICT (rollout_id) DO NOTHING`, [rolloutId, this.owner, this.leaseMs]);
      return;
    }
    await this.pool.query(`INSERT INTO rollout_leases (rollout_id, owner, expires_at) VALUES ($1, '', to_timestamp(0)) ON CONFLICT (rollout_id) DO NOTHING`, [rolloutId]);
  }

  /** Nothing left to do: the rollout needs no owner any more. */
  async release(rolloutId: string): Promise<void> {
    await this.pool.query(`DELETE FROM rollout_leases WHERE rollout_id = $1 AND owner = $2`, [rolloutId, this.owner]);
  }

  /** On shutdown: let another instance take over at once. */
  async expireAll(rolloutIds: string[]): Promise<void> {
    if (rolloutIds.length === 0) return;
    await this.pool.query(`UPDATE rollout_leases SET expires_at = to_timestamp(0) WHERE owner = $1 AND rollout_id = ANY($2)`, [this.owner, rolloutIds]);
  }
}

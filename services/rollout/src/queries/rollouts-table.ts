import type pg from 'pg';
import type { RolloutSummary } from '@changeover/contracts';
import { showSummary } from '../rollout/rollout.view.js';
import type { ActiveState } from '../rollout/rollout.state.js';

/**
 * The `rollouts` projection for `rollout list`: upserted after appends (throttled), guarded by the
 * stream version so a late writer never overwrites a newer row. A throttled write can die with the
 * process, so the owner rewrites the row on adoption and writes it at once before releasing a lease.
 */
export class RolloutsTable {
  private readonly pending = new Map<string, { state: ActiveState; version: number }>();
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly pool: pg.Pool,
    private readonly onError: (e: unknown) => void,
    private readonly delayMs = 100,
  ) {}

  save(state: ActiveState, version: number): void {
    this.pending.set(state.rolloutId, { state, version });
    this.timer ??= setTimeout(() => {
      this.timer = null;
      this.flushing = this.flushing.then(() => this.flush()).catch(this.onError);
    }, this.delayMs);
  }

  async flush(): Promise<void> {
    const batch = [...this.pending.values()];
    this.pending.clear();
    for (const { state, version } of batch) await this.upsert(state, version);
  }

  /** Writes one row at once (a finished rollout, before its lease is released). */
  async saveNow(state: ActiveState, version: number): Promise<void> {
    const pending = this.pending.get(state.rolloutId);
    if (pending && pending.version <= version) this.pending.delete(state.rolloutId);
    await this.upsert(state, version);
  }

  private async upsert(state: ActiveState, version: number): Promise<void> {
    // As `rollout show` answers it, so a row as new as the stream can answer it.
    const s = showSummary(state, version);
    await this.pool.query(
      `INSERT INTO rollouts (id, status, version, summary, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, version = EXCLUDED.version, summary = EXCLUDED.summary, updated_at = EXCLUDED.updated_at
       WHERE rollouts.version < EXCLUDED.version`,
      [s.rolloutId, s.status, version, JSON.stringify(s), s.createdAt, s.updatedAt],
    );
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.flushing;
    await this.flush().catch(this.onError);
  }

  /** Rollouts per status, for the `changeover_rollouts` gauge. */
  async countByStatus(): Promise<Record<string, number>> {
    const r = await this.pool.query<{ status: string; n: number }>(`SELECT status, count(*)::int AS n FROM rollouts GROUP BY status`);
    return Object.fromEntries(r.rows.map((x) => [x.status, x.n]));
  }

  /** One rollout's row: its summary and the stream version it was written at. */
  async get(id: string): Promise<{ summary: RolloutSummary; version: number } | undefined> {
    const r = await this.pool.query<{ summary: RolloutSummary; version: string }>(`SELECT summary, version FROM rollouts WHERE id = $1`, [id]);
    const row = r.rows[0];
    return row && { summary: row.summary, version: Number(row.version) };
  }

  async list(limit: number): Promise<RolloutSummary[]> {
    const r = await this.pool.query<{ summary: RolloutSummary }>(`SELECT summary FROM rollouts ORDER BY created_at DESC, id LIMIT $1`, [limit]);
    return r.rows.map((x) => x.summary);
  }
}

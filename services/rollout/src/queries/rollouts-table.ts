import type pg from 'pg';
import { ChangeoverError, decodeCursor, DEFAULT_PAGE_LIMIT, encodeCursor, type ListRolloutsQuery, type RolloutSummary } from '@changeover/contracts';
import { showSummary } from '../rollout/rollout.view.js';
import type { ActiveState } from '../rollout/rollout.state.js';

/**
 * The `rollouts` projection for `rollout list`: upserted after appends (throttled), guarded by the
 * stream version so a late writer never overwrites a newer row. A throttled write can die with the
 * process, so the owner rewrites the row on adoption and writes it at once before releasing a lease.
 * `created_by`, `packages` (each `name` and `name@version`) and `classes` are the history filters.
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
      `INSERT INTO rollouts (id, status, version, summary, created_at, updated_at, created_by, packages, classes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
       ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, version = EXCLUDED.version, summary = EXCLUDED.summary, updated_at = EXCLUDED.updated_at
       WHERE rollouts.version < EXCLUDED.version`,
      [s.rolloutId, s.status, version, JSON.stringify(s), s.createdAt, s.updatedAt, state.createdBy, packagesOf(state), classesOf(state)],
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

  /**
   * One page of the history, newest first by (created_at, id): a keyset page, so a page costs the
   * same at any depth and rows written meanwhile neither repeat nor skip one.
   */
  async list(q: ListRolloutsQuery): Promise<{ rollouts: RolloutSummary[]; nextCursor: string | null }> {
    const where: string[] = [];
    const args: unknown[] = [];
    const arg = (v: unknown) => `$${args.push(v)}`;
    if (q.status) where.push(`status = ANY(${arg(q.status)}::text[])`);
    if (q.package) where.push(`packages @> ARRAY[${arg(q.version ? `${q.package}@${q.version}` : q.package)}]::text[]`);
    if (q.class) where.push(`classes @> ARRAY[${arg(q.class)}]::text[]`);
    if (q.actor) where.push(`created_by = ${arg(q.actor)}`);
    if (q.createdAfter) where.push(`created_at >= ${arg(q.createdAfter)}`);
    if (q.createdBefore) where.push(`created_at < ${arg(q.createdBefore)}`);
    if (q.cursor) {
      const at = decodeCursor(q.cursor, isRolloutPosition);
      if (!at) throw new ChangeoverError('VALIDATION_FAILED', 'invalid rollout query: cursor: not a cursor of this list', { issues: [{ path: ['cursor'], message: 'not a cursor of this list', code: 'custom' }] });
      where.push(`(created_at, id) < (${arg(at[0])}::timestamptz, ${arg(at[1])})`);
    }
    const limit = q.limit ?? DEFAULT_PAGE_LIMIT;
    const r = await this.pool.query<{ summary: RolloutSummary; id: string; created: string }>(
      `SELECT summary, id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created FROM rollouts
       ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT ${arg(limit + 1)}`,
      args,
    );
    const rows = r.rows.slice(0, limit);
    const last = rows.at(-1);
    return { rollouts: rows.map((x) => x.summary), nextCursor: r.rows.length > limit && last ? encodeCursor([last.created, last.id]) : null };
  }
}

const isRolloutPosition = (v: unknown): v is [string, string] => Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && !Number.isNaN(Date.parse(v[0])) && typeof v[1] === 'string' && v[1].length <= 64;

/** Each package the update names, as `name` and `name@version` (the `package` filter with or without a version). */
export function packagesOf(state: ActiveState): string[] {
  const out = new Set<string>();
  for (const t of state.update.targets) for (const p of t.packages) out.add(p.name).add(`${p.name}@${p.version}`);
  return [...out];
}

/** The classes the update targets, and those its selections were resolved to. */
export function classesOf(state: ActiveState): string[] {
  const out = new Set<string>();
  for (const t of state.update.targets) if ('classes' in t) for (const c of t.classes) out.add(c);
  for (const a of state.assignments) if (a.classId) out.add(a.classId);
  return [...out];
}

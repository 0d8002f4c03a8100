import type pg from 'pg';
import { ClassId, parse, SetClassWindowsRequest, type ClassWindows, type MaintenanceWindow, type RolloutWindows } from '@changeover/contracts';
import { anyOpen, nextOpening } from './maintenance-window.js';

/**
 * Each class's maintenance windows (table `class_windows`). They are rollout policy rather than the
 * class's software configuration, so the rollout service keeps them: a rollout copies its classes'
 * windows into its created event, and from then on its events alone decide when its waves may
 * start (a restart or a later edit does not change the rules under a running rollout).
 */
export class ClassWindowsStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly clock: () => Date,
  ) {}

  async get(classId: string): Promise<ClassWindows> {
    const id = parse(ClassId, classId, 'class id');
    const r = await this.pool.query<{ windows: MaintenanceWindow[]; updated_by: string; updated_at: Date }>(`SELECT windows, updated_by, updated_at FROM class_windows WHERE class_id = $1`, [id]);
    const row = r.rows[0];
    return this.view(id, row?.windows ?? [], row?.updated_by ?? null, row?.updated_at.toISOString() ?? null);
  }

  async set(classId: string, body: unknown, by: string): Promise<ClassWindows> {
    const id = parse(ClassId, classId, 'class id');
    const req = parse(SetClassWindowsRequest, body, 'class windows');
    const now = this.clock();
    await this.pool.query(
      `INSERT INTO class_windows (class_id, windows, updated_by, updated_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (class_id) DO UPDATE SET windows = EXCLUDED.windows, updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at`,
      [id, JSON.stringify(req.windows), by, now],
    );
    return this.view(id, req.windows, by, now.toISOString());
  }

  /** The windows of these classes that have some, for a rollout's created event. */
  async forClasses(classIds: readonly string[]): Promise<RolloutWindows> {
    if (classIds.length === 0) return [];
    const r = await this.pool.query<{ class_id: string; windows: MaintenanceWindow[] }>(`SELECT class_id, windows FROM class_windows WHERE class_id = ANY($1::text[]) AND jsonb_array_length(windows) > 0 ORDER BY class_id`, [[...new Set(classIds)]]);
    return r.rows.map((x) => ({ classId: x.class_id, windows: x.windows }));
  }

  private view(classId: string, windows: MaintenanceWindow[], updatedBy: string | null, updatedAt: string | null): ClassWindows {
    const now = this.clock();
    const openNow = anyOpen(windows, now);
    const next = openNow ? null : nextOpening(windows, now);
    return { classId, windows, updatedBy, updatedAt, openNow, nextOpening: next ? next.toISOString() : null };
  }
}

import type { SqlPool } from '../db/sql.js';
import { canonicalJson, ChangeoverError, type ClassRecord, type PackageRef, type SetClassRequest } from '@changeover/contracts';
import { RegistryEvents, streams } from '../events/registry.events.js';
import type { PackageService } from '../packages/package.service.js';

interface ClassRowData {
  class_id: string;
  packages: PackageRef[];
  description: string;
  updated_at: Date;
  nodes: string;
}

/** Node classes: named software configurations (claim 24). */
export class ClassService {
  constructor(
    private readonly db: SqlPool,
    private readonly packages: PackageService,
    private readonly events: RegistryEvents,
  ) {}

  async get(classId: string): Promise<ClassRecord> {
    const [row] = await this.rows(classId);
    if (!row) throw new ChangeoverError('NOT_FOUND', `unknown class ${classId}`, { classId });
    return toRecord(row);
  }

  async list(): Promise<ClassRecord[]> {
    return (await this.rows(null)).map(toRecord);
  }

  /** Replaces the desired packages (each must exist); class.configuration-changed when they change. */
  async set(req: SetClassRequest, now = new Date()): Promise<ClassRecord> {
    if (req.packages.length > 0) await this.packages.getPackages(req.packages);
    await this.db.transaction(async (m) => {
      const [old] = await m.query<{ packages: PackageRef[] }>('SELECT packages FROM registry_classes WHERE class_id = $1 FOR UPDATE', [req.classId]);
      await m.query(
        `INSERT INTO registry_classes (class_id, packages, description, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (class_id) DO UPDATE SET packages = EXCLUDED.packages, description = EXCLUDED.description, updated_at = EXCLUDED.updated_at`,
        [req.classId, JSON.stringify(req.packages), req.description, now],
      );
      const changed = !old || canonicalJson(old.packages) !== canonicalJson(req.packages);
      if (changed) await this.events.appendIn(m, [RegistryEvents.event(streams.class(req.classId), 'class.configuration-changed', { classId: req.classId, packages: req.packages, by: req.by, at: now.toISOString() })]);
    });
    return this.get(req.classId);
  }

  private rows(classId: string | null): Promise<ClassRowData[]> {
    return this.db.query(
      `SELECT c.*, (SELECT count(*) FROM registry_nodes n WHERE n.class_id = c.class_id AND n.decommissioned_at IS NULL) AS nodes
       FROM registry_classes c WHERE ($1::text IS NULL OR c.class_id = $1) ORDER BY c.class_id`,
      [classId],
    );
  }
}

const toRecord = (r: ClassRowData): ClassRecord => ({
  classId: r.class_id,
  packages: r.packages,
  description: r.description,
  nodes: Number(r.nodes),
  updatedAt: new Date(r.updated_at).toISOString(),
});

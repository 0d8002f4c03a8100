import type { Sql, SqlPool, Tx } from '../db/sql.js';
import type { PackageManifest, PackageRef, PackageSummary, Signature, SignatureVerdict, SignedPackage } from '@changeover/contracts';

// Plain SQL over registry_packages. Blob garbage collection and package inserts share one advisory
// lock key (inserts shared, GC exclusive), so a blob is never deleted under a package being stored.
const BLOB_GC_LOCK = 7_101_002;

export interface NewPackageRow {
  manifest: PackageManifest;
  signature: Signature | null;
  verdict: SignatureVerdict;
  signedBy: string | null;
  contentHash: string;
}

interface Row {
  name: string;
  version: string;
  manifest: PackageManifest;
  signature: Signature | null;
  signature_verdict: SignatureVerdict;
  signed_by: string | null;
  content_hash: string;
  created_at: Date;
}

export class PackageRepository {
  constructor(private readonly db: SqlPool) {}

  /** content hash by name@version for those that exist. */
  async contentHashes(refs: readonly PackageRef[]): Promise<Map<string, string>> {
    if (refs.length === 0) return new Map();
    const rows = await this.db.query<{ id: string; content_hash: string }>(
      `SELECT name || '@' || version AS id, content_hash FROM registry_packages p JOIN unnest($1::text[], $2::text[]) AS r(n, v) ON p.name = r.n AND p.version = r.v`,
      [refs.map((r) => r.name), refs.map((r) => r.version)],
    );
    return new Map(rows.map((r) => [r.id, r.content_hash]));
  }

  /**
   * Inserts every row in one transaction (all or nothing). Returns the ids that were new; an id that
   * exists with another content hash throws via `onConflict`, rolling the whole batch back.
   * `checkBlobs` runs inside, after the GC lock is held, and throws if a referenced blob is missing;
   * `onInserted` runs last, in the same transaction (the events of the new rows), and may throw to undo it all.
   */
  async insertAll(rows: readonly NewPackageRow[], onConflict: (id: string) => Error, checkBlobs: () => Promise<void>, onInserted: (tx: Tx, created: ReadonlySet<string>) => Promise<void>): Promise<Set<string>> {
    return this.db.transaction(async (m: Tx) => {
      await m.query('SELECT pg_advisory_xact_lock_shared($1)', [BLOB_GC_LOCK]);
      // Under the shared lock no collection can run: blobs present now stay until the commit.
      await checkBlobs();
      const created = new Set<string>();
      for (const r of rows) {
        const id = `${r.manifest.name}@${r.manifest.version}`;
        const inserted = await m.query<unknown>(
          `INSERT INTO registry_packages (name, version, manifest, signature, signature_verdict, signed_by, content_hash)
           VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name, version) DO NOTHING RETURNING 1`,
          [r.manifest.name, r.manifest.version, JSON.stringify(r.manifest), r.signature ? JSON.stringify(r.signature) : null, r.verdict, r.signedBy, r.contentHash],
        );
        if (inserted.length === 1) {
          created.add(id);
          continue;
        }
        const [existing] = await m.query<{ content_hash: string }>('SELECT content_hash FROM registry_packages WHERE name = $1 AND version = $2', [r.manifest.name, r.manifest.version]);
        if (existing?.content_hash !== r.contentHash) throw onConflict(id);
      }
      await onInserted(m, created);
      return created;
    });
  }

  async get(refs: readonly PackageRef[]): Promise<Map<string, SignedPackage & { summary: PackageSummary }>> {
    if (refs.length === 0) return new Map();
    const rows = await this.db.query<Row>(
      `SELECT p.* FROM registry_packages p JOIN unnest($1::text[], $2::text[]) AS r(n, v) ON p.name = r.n AND p.version = r.v`,
      [refs.map((r) => r.name), refs.map((r) => r.version)],
    );
    return new Map(rows.map((r) => [`${r.name}@${r.version}`, { ...toSigned(r), summary: toSummary(r) }]));
  }

  async list(name: string | undefined, limit: number): Promise<PackageSummary[]> {
    const rows = await this.db.query<Row>(
      `SELECT * FROM registry_packages WHERE ($1::text IS NULL OR name = $1) ORDER BY name, created_at DESC LIMIT $2`,
      [name ?? null, limit],
    );
    return rows.map(toSummary);
  }

  async versions(name: string): Promise<string[]> {
    const rows = await this.db.query<{ version: string }>('SELECT version FROM registry_packages WHERE name = $1', [name]);
    return rows.map((r) => r.version);
  }

  /** Versions of a package some node runs or keeps for regression, or an unfinished rollout references. */
  async protectedVersions(name: string): Promise<Set<string>> {
    const rows = await this.db.query<{ version: string }>(
      `SELECT p->>'version' AS version FROM registry_nodes n,
         jsonb_array_elements(coalesce(n.inventory->'active', '[]'::jsonb) || coalesce(n.inventory->'previous', '[]'::jsonb)) p
       WHERE n.inventory IS NOT NULL AND p->>'name' = $1
       UNION SELECT version FROM registry_rollout_refs WHERE name = $1`,
      [name],
    );
    return new Set(rows.map((r) => r.version));
  }

  /**
   * Deletes package versions and, in the same exclusive GC section, calls `dropBlob` for each of
   * their digests no remaining package references. `onDeleted` (the events) runs in the same
   * transaction before any blob is dropped, so a failure there leaves rows and blobs as they were.
   */
  async deleteVersions(name: string, versions: readonly string[], dropBlob: (digest: string) => Promise<void>, onDeleted: (tx: Tx, deleted: string[]) => Promise<void>): Promise<string[]> {
    return this.db.transaction(async (m: Tx) => {
      await m.query('SELECT pg_advisory_xact_lock($1)', [BLOB_GC_LOCK]);
      const deleted = await m.query<Row>('DELETE FROM registry_packages WHERE name = $1 AND version = ANY($2::text[]) RETURNING *', [name, versions]);
      await onDeleted(m, deleted.map((r) => r.version));
      const digests = new Set(deleted.flatMap((r) => r.manifest.modules.map((x) => x.digest)));
      await this.dropUnreferenced(m, [...digests], dropBlob);
      return deleted.map((r) => r.version);
    });
  }

  /** Drops blobs written for a batch that was then refused, unless a package references them. */
  async collectBlobs(digests: readonly string[], dropBlob: (digest: string) => Promise<void>): Promise<void> {
    if (digests.length === 0) return;
    await this.db.transaction(async (m: Sql) => {
      await m.query('SELECT pg_advisory_xact_lock($1)', [BLOB_GC_LOCK]);
      await this.dropUnreferenced(m, digests, dropBlob);
    });
  }

  private async dropUnreferenced(m: Sql, digests: readonly string[], dropBlob: (digest: string) => Promise<void>): Promise<void> {
    for (const d of digests) {
      const [ref] = await m.query<unknown>(`SELECT 1 FROM registry_packages WHERE manifest @> $1::jsonb LIMIT 1`, [JSON.stringify({ modules: [{ digest: d }] })]);
      if (!ref) await dropBlob(d);
    }
  }
}

const toSigned = (r: Row): SignedPackage => (r.signature ? { manifest: r.manifest, signature: r.signature } : { manifest: r.manifest });

const toSummary = (r: Row): PackageSummary => ({
  name: r.name,
  version: r.version,
  description: r.manifest.description,
  contentHash: r.content_hash,
  signatureVerdict: r.signature_verdict,
  signedBy: r.signed_by,
  modules: r.manifest.modules.length,
  createdAt: new Date(r.created_at).toISOString(),
});

import type { MigrationInterface, QueryRunner } from 'typeorm';

export class RegistryInit1732350000000 implements MigrationInterface {
  name = 'RegistryInit1732350000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE registry_packages (
      name text NOT NULL,
      version text NOT NULL,
      manifest jsonb NOT NULL,
      signature jsonb,
      signature_verdict text NOT NULL,
      signed_by text,
      content_hash text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (name, version))`);
    // Blob garbage collection asks "does any package still reference this digest?".
    await q.query(`CREATE INDEX registry_packages_manifest ON registry_packages USING gin (manifest jsonb_path_ops)`);
    await q.query(`CREATE TABLE registry_nodes (
      node_id text PRIMARY KEY,
      class_id text NOT NULL,
      processor_type text NOT NULL,
      characteristics jsonb NOT NULL,
      enrolled_at timestamptz NOT NULL,
      last_heartbeat_at timestamptz,
      stale boolean NOT NULL DEFAULT true,
      agent_version text,
      cluster_versions jsonb,
      inventory jsonb,
      inventory_digest text,
      phase text,
      decommissioned_at timestamptz)`);
    await q.query(`CREATE INDEX registry_nodes_class ON registry_nodes (class_id)`);
    await q.query(`CREATE TABLE registry_classes (
      class_id text PRIMARY KEY,
      packages jsonb NOT NULL DEFAULT '[]',
      description text NOT NULL DEFAULT '',
      updated_at timestamptz NOT NULL)`);
    await q.query(`CREATE TABLE registry_rollout_refs (
      rollout_id text NOT NULL,
      name text NOT NULL,
      version text NOT NULL,
      PRIMARY KEY (rollout_id, name, version))`);
    await q.query(`CREATE INDEX registry_rollout_refs_package ON registry_rollout_refs (name, version)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE registry_rollout_refs`);
    await q.query(`DROP TABLE registry_classes`);
    await q.query(`DROP TABLE registry_nodes`);
    await q.query(`DROP TABLE registry_packages`);
  }
}

import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * NATS credentials issued to nodes at enrollment: only the user public key (the seed is handed to
 * the node once and never stored). A revoked key keeps its row: the revocation list pushed to the
 * servers is rebuilt from these rows, whole, every time.
 */
export class NodeCredentials1764300000000 implements MigrationInterface {
  name = 'NodeCredentials1764300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE registry_node_credentials (
      user_public_key text PRIMARY KEY,
      node_id text NOT NULL,
      issued_at timestamptz NOT NULL,
      expires_at timestamptz,
      revoked_at timestamptz
    )`);
    await q.query(`CREATE INDEX registry_node_credentials_node ON registry_node_credentials (node_id)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE registry_node_credentials`);
  }
}

import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The inventory digest a node last claimed in a heartbeat: when it differs from the stored inventory's, that inventory is stale. */
export class NodeReportedInventory1764100000000 implements MigrationInterface {
  name = 'NodeReportedInventory1764100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE registry_nodes ADD COLUMN reported_inventory_digest text`);
    await q.query(`UPDATE registry_nodes SET reported_inventory_digest = inventory_digest`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE registry_nodes DROP COLUMN reported_inventory_digest`);
  }
}

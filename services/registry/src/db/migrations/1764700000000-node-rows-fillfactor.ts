import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Every node row is rewritten by its heartbeats and by each inventory it reports, and none of those
 * writes touches an indexed column. Pages kept half free let Postgres put the new row version on the
 * same page (a HOT update: no new index entries, and pruned without a vacuum), where full pages make
 * every one of a wave's 10,000 inventory writes move its row and add to both indexes. The setting
 * applies to pages written from now on: an existing row gets the room the first time an update moves
 * it (no table rewrite, so no exclusive lock while the migration runs).
 */
export class NodeRowsFillfactor1764700000000 implements MigrationInterface {
  name = 'NodeRowsFillfactor1764700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE registry_nodes SET (fillfactor = 50)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE registry_nodes RESET (fillfactor)`);
  }
}

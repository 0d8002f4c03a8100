import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Rollouts known to have finished. The registry follows a rollout's "created" and its "finished"
 * events with separate JetStream consumers, so a finished event can be applied before its rollout's
 * created event: the row keeps that late created event from recording references again.
 */
export class FinishedRollouts1764500000000 implements MigrationInterface {
  name = 'FinishedRollouts1764500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE registry_finished_rollouts (
      rollout_id text PRIMARY KEY,
      finished_at timestamptz NOT NULL DEFAULT now()
    )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE registry_finished_rollouts`);
  }
}

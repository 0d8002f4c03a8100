import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Each claim of a delivery gets a token: only the attempt holding the latest claim records the delivery's state. */
export class DeliveryClaimToken1765100000000 implements MigrationInterface {
  name = 'DeliveryClaimToken1765100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE notifier.deliveries ADD COLUMN claim_token uuid`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE notifier.deliveries DROP COLUMN claim_token`);
  }
}

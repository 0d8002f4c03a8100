import type { MigrationInterface, QueryRunner } from 'typeorm';

export class NotifierInit1732350000000 implements MigrationInterface {
  name = 'NotifierInit1732350000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE SCHEMA IF NOT EXISTS notifier`);
    await q.query(`CREATE TABLE notifier.subscriptions (
      id uuid PRIMARY KEY,
      name text NOT NULL,
      channel jsonb NOT NULL,
      filter jsonb NOT NULL,
      default_key text UNIQUE,
      created_at timestamptz NOT NULL DEFAULT now(),
      deleted_at timestamptz
    )`);
    await q.query(`CREATE TABLE notifier.deliveries (
      id uuid PRIMARY KEY,
      subscription_id uuid NOT NULL REFERENCES notifier.subscriptions(id),
      event_id text NOT NULL,
      event_type text NOT NULL,
      channel text NOT NULL,
      event jsonb NOT NULL,
      status text NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
      attempt_count int NOT NULL DEFAULT 0,
      cycle_attempts int NOT NULL DEFAULT 0,
      next_attempt_at timestamptz,
      last_status_code int,
      last_error text,
      created_at timestamptz NOT NULL DEFAULT now(),
      delivered_at timestamptz,
      CONSTRAINT deliveries_subscription_event UNIQUE (subscription_id, event_id)
    )`);
    await q.query(`CREATE INDEX deliveries_due ON notifier.deliveries (next_attempt_at) WHERE status = 'pending'`);
    await q.query(`CREATE INDEX deliveries_subscription_created ON notifier.deliveries (subscription_id, created_at)`);
    await q.query(`CREATE TABLE notifier.delivery_attempts (
      id bigserial PRIMARY KEY,
      delivery_id uuid NOT NULL REFERENCES notifier.deliveries(id),
      attempt int NOT NULL,
      at timestamptz NOT NULL DEFAULT now(),
      outcome text NOT NULL CHECK (outcome IN ('success', 'failure')),
      status_code int,
      latency_ms int NOT NULL,
      error text
    )`);
    await q.query(`CREATE INDEX delivery_attempts_delivery ON notifier.delivery_attempts (delivery_id)`);
    await q.query(`CREATE TABLE notifier.nodes (node_id text PRIMARY KEY, class_id text NOT NULL, labels jsonb NOT NULL DEFAULT '{}')`);
    await q.query(`CREATE TABLE notifier.rollouts (rollout_id text PRIMARY KEY, class_ids text[] NOT NULL)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP SCHEMA notifier CASCADE`);
  }
}

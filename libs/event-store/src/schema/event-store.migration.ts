import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The event store's tables. `transaction_id` lets readers skip nothing: a global position is
 * only handed out once every older transaction has finished (see readAll).
 */
export class EventStoreSchema1764000000000 implements MigrationInterface {
  name = 'EventStoreSchema1764000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE IF NOT EXISTS events (
        global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
        stream_id text NOT NULL,
        stream_position integer NOT NULL CHECK (stream_position > 0),
        event_id text NOT NULL,
        event_type text NOT NULL,
        data jsonb NOT NULL,
        metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT events_stream_position_key UNIQUE (stream_id, stream_position),
        CONSTRAINT events_event_id_key UNIQUE (event_id)
      )`);
    await q.query(`
      CREATE TABLE IF NOT EXISTS subscription_checkpoints (
        subscription_id text PRIMARY KEY,
        position bigint NOT NULL CHECK (position >= 0),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE IF EXISTS subscription_checkpoints');
    await q.query('DROP TABLE IF EXISTS events');
  }
}

/** Every event-store migration in order: services may list these beside their own. */
export const eventStoreMigrations = [EventStoreSchema1764000000000];

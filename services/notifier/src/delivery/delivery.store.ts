import { z } from 'zod';
import type { DataSource } from 'typeorm';
import { ChangeoverError, parse, type Delivery, type DeliveryDetail, type ListDeliveriesQuery } from '@changeover/contracts';
import { query } from '../db/sql.js';

interface Row {
  id: string;
  subscription_id: string;
  event_id: string;
  event_type: string;
  channel: Delivery['channel'];
  status: Delivery['status'];
  attempt_count: number;
  next_attempt_at: Date | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: Date;
  delivered_at: Date | null;
}

const COLUMNS = `id, subscription_id, event_id, event_type, channel, status, attempt_count, next_attempt_at, last_status_code, last_error, created_at, delivered_at`;
const DeliveryId = z.uuid();
const iso = (d: Date | null) => (d ? d.toISOString() : null);

const toDelivery = (r: Row): Delivery => ({
  id: r.id,
  subscriptionId: r.subscription_id,
  eventId: r.event_id,
  eventType: r.event_type,
  channel: r.channel,
  status: r.status,
  attemptCount: r.attempt_count,
  nextAttemptAt: r.status === 'pending' ? iso(r.next_attempt_at) : null,
  lastStatusCode: r.last_status_code,
  lastError: r.last_error,
  createdAt: r.created_at.toISOString(),
  deliveredAt: iso(r.delivered_at),
});

/** The delivery log: read it, and send a delivery again. */
export class DeliveryStore {
  constructor(
    private readonly db: DataSource,
    private readonly onRedeliver: () => void,
  ) {}

  async list(q: ListDeliveriesQuery): Promise<Delivery[]> {
    const rows = await query<Row>(
      this.db,
      `SELECT ${COLUMNS} FROM notifier.deliveries
       WHERE ($1::uuid IS NULL OR subscription_id = $1) AND ($2::text IS NULL OR status = $2)
       ORDER BY created_at DESC, id LIMIT $3`,
      [q.subscriptionId ?? null, q.status ?? null, q.limit],
    );
    return rows.map(toDelivery);
  }

  async get(id: string): Promise<DeliveryDetail> {
    const rows = await query<Row>(this.db, `SELECT ${COLUMNS} FROM notifier.deliveries WHERE id = $1`, [parse(DeliveryId, id, 'delivery id')]);
    if (!rows[0]) throw new ChangeoverError('NOT_FOUND', `delivery ${id} not found`);
    const attempts = await query<{ attempt: number; at: Date; outcome: 'success' | 'failure'; status_code: number | null; latency_ms: number; error: string | null }>(
      this.db,
      `SELECT attempt, at, outcome, status_code, latency_ms, error FROM notifier.delivery_attempts WHERE delivery_id = $1 ORDER BY attempt`,
      [id],
    );
    return {
      ...toDelivery(rows[0]),
      attempts: attempts.map((a) => ({ attempt: a.attempt, at: a.at.toISOString(), outcome: a.outcome, statusCode: a.status_code, latencyMs: a.latency_ms, error: a.error })),
    };
  }

  /**
   * Makes a delivery due now with a fresh attempt budget, whatever its state; same event id, so receivers
   * de-duplicate. An attempt in flight meanwhile no longer holds the claim, so it cannot mark this one done.
   */
  async redeliver(id: string): Promise<Delivery> {
    const rows = await query<Row>(
      this.db,
      `UPDATE notifier.deliveries d SET status = 'pending', cycle_attempts = 0, next_attempt_at = now(), delivered_at = NULL, claim_token = NULL
       FROM notifier.subscriptions s
       WHERE d.id = $1 AND s.id = d.subscription_id AND s.deleted_at IS NULL
       RETURNING ${COLUMNS.split(', ').map((c) => `d.${c}`).join(', ')}`,
      [parse(DeliveryId, id, 'delivery id')],
    );
    if (!rows[0]) {
      const exists = await query(this.db, `SELECT 1 FROM notifier.deliveries WHERE id = $1`, [id]);
      throw exists.length ? new ChangeoverError('INVALID_STATE', `delivery ${id} belongs to a deleted subscription`) : new ChangeoverError('NOT_FOUND', `delivery ${id} not found`);
    }
    this.onRedeliver();
    return toDelivery(rows[0]);
  }
}

import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { inTransaction, type Sql } from '../db/sql.js';
import { CloudEvent, EVENT_SCHEMAS, fromCloudEventType, isEventType, type EventData, type EventType } from '@changeover/contracts';
import { eventFacts, type EventContext } from '../subscriptions/event-context.js';
import { matches, needsNodeFacts } from '../subscriptions/subscription.matcher.js';
import { activeSubscriptions, type ActiveSubscription } from '../subscriptions/subscription.store.js';

export type IntakeOutcome =
  | { kind: 'recorded'; eventId: string; matched: number; inserted: number }
  | { kind: 'skipped'; reason: 'unknown-type' | 'invalid'; detail: string };

/**
 * Matches one event against the subscriptions and records one delivery per match, all in one
 * transaction; the caller acknowledges the message only after this returns. A redelivered event
 * inserts nothing new (unique subscription_id, event_id).
 */
export class EventIntake {
  constructor(private readonly db: DataSource) {}

  async handle(payload: Uint8Array): Promise<IntakeOutcome> {
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(payload));
    } catch {
      return { kind: 'skipped', reason: 'invalid', detail: 'not JSON' };
    }
    const ce = CloudEvent.safeParse(json);
    if (!ce.success) return { kind: 'skipped', reason: 'invalid', detail: `not a CloudEvent: ${ce.error.issues[0]?.path.join('.')}: ${ce.error.issues[0]?.message}` };
    const type = fromCloudEventType(ce.data.type);
    if (!isEventType(type)) return { kind: 'skipped', reason: 'unknown-type', detail: ce.data.type };
    const data = EVENT_SCHEMAS[type].safeParse(ce.data.data);
    if (!data.success) return { kind: 'skipped', reason: 'invalid', detail: `${type} data: ${data.error.issues[0]?.path.join('.')}: ${data.error.issues[0]?.message}` };

    const facts = eventFacts(type, data.data);
    try {
      return await this.record(type, data.data, ce.data, facts);
    } catch (e) {
      // A value Postgres cannot store (class 22: a NUL character, a lone surrogate) is the event's fault:
      // skipped as invalid, never redelivered for ever.
      const code = (e as { code?: unknown; driverError?: { code?: unknown } })?.code ?? (e as { driverError?: { code?: unknown } })?.driverError?.code;
      if (typeof code === 'string' && code.startsWith('22')) return { kind: 'skipped', reason: 'invalid', detail: `cannot be stored (${code}): ${e instanceof Error ? e.message : String(e)}`.slice(0, 500) };
      throw e;
    }
  }

  private record(type: EventType, data: unknown, ce: CloudEvent, facts: Omit<EventContext, 'nodeLabels'>): Promise<IntakeOutcome> {
    return inTransaction(this.db, async (tx) => {
      await learn(tx, type, data);
      const subs = await activeSubscriptions(tx);
      const ctx = subs.some((s) => needsNodeFacts(s.filter)) ? await widen(tx, facts) : { ...facts, nodeLabels: [] };
      const matched = subs.filter((s) => matches(s.filter, ctx));
      const inserted = await insertDeliveries(tx, matched, ce, type);
      return { kind: 'recorded' as const, eventId: ce.id, matched: matched.length, inserted };
    });
  }
}

/** Keeps what class and label filters need: nodes' class and labels, rollouts' classes. */
async function learn(tx: Sql, type: EventType, data: unknown): Promise<void> {
  if (type === 'node.enrolled') {
    const d = data as EventData<'node.enrolled'>;
    await tx(
      `INSERT INTO notifier.nodes (node_id, class_id, labels) VALUES ($1, $2, $3)
       ON CONFLICT (node_id) DO UPDATE SET class_id = EXCLUDED.class_id, labels = EXCLUDED.labels`,
      [d.nodeId, d.classId, JSON.stringify(d.characteristics.labels ?? {})],
    );
  } else if (type === 'node.decommissioned') {
    await tx(`DELETE FROM notifier.nodes WHERE node_id = $1`, [(data as EventData<'node.decommissioned'>).nodeId]);
  } else if (type === 'rollout.created') {
    const d = data as EventData<'rollout.created'>;
    const classes = [...new Set(d.assignments.flatMap((a) => (a.classId ? [a.classId] : [])))];
    await tx(
      `INSERT INTO notifier.rollouts (rollout_id, class_ids) VALUES ($1, $2) ON CONFLICT (rollout_id) DO UPDATE SET class_ids = EXCLUDED.class_ids`,
      [d.rolloutId, classes],
    );
  }
}

async function widen(tx: Sql, facts: Omit<EventContext, 'nodeLabels'>): Promise<EventContext> {
  const classIds = new Set(facts.classIds);
  const nodeLabels: Record<string, string>[] = [];
  if (facts.nodeIds.length) {
    const rows: { class_id: string; labels: Record<string, string> }[] = await tx(`SELECT class_id, labels FROM notifier.nodes WHERE node_id = ANY($1)`, [facts.nodeIds]);
    for (const r of rows) {
      classIds.add(r.class_id);
      nodeLabels.push(r.labels);
    }
  }
  if (facts.rolloutId) {
    const rows: { class_ids: string[] }[] = await tx(`SELECT class_ids FROM notifier.rollouts WHERE rollout_id = $1`, [facts.rolloutId]);
    for (const c of rows[0]?.class_ids ?? []) classIds.add(c);
  }
  return { ...facts, classIds: [...classIds], nodeLabels };
}

async function insertDeliveries(tx: Sql, subs: ActiveSubscription[], event: CloudEvent, type: EventType): Promise<number> {
  if (!subs.length) return 0;
  const params: unknown[] = [event.id, type, JSON.stringify(event)];
  const values = subs.map((s) => {
    params.push(randomUUID(), s.id, s.channel.type);
    const n = params.length;
    return `($${n - 2}::uuid, $${n - 1}::uuid, $1, $2, $${n}, $3::jsonb, 'pending', now())`;
  });
  const rows: unknown[] = await tx(
    `INSERT INTO notifier.deliveries (id, subscription_id, event_id, event_type, channel, event, status, next_attempt_at)
     VALUES ${values.join(', ')}
     ON CONFLICT (subscription_id, event_id) DO NOTHING RETURNING id`,
    params,
  );
  return rows.length;
}

import { AckPolicy, DeliverPolicy, type ConsumerConfig, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { eventSubject, fromCloudEventType, isChangeoverError, packageId, parseCloudEvent, STREAMS, type PackageRef } from '@changeover/contracts';
import type { SqlPool } from '../db/sql.js';
import type { Logger } from '../observability.js';
import { consumerNotFound, ensureDurable, followDurables } from '../events/durable-consumers.js';

/** The one consumer that used to take every rollout event (and ack all but these four unread). */
const LEGACY_DURABLE = 'registry-rollout-refs';
const FINISHED = ['rollout.completed', 'rollout.failed', 'rollout.cancelled'] as const;
/** The only rollout events that change references, each followed by a consumer of its own subject. */
export const REF_EVENT_TYPES = ['rollout.created', ...FINISHED] as const;
/** Durable consumer of one event type (shared by registry instances): registry-refs-rollout-created, … */
export const refsDurable = (type: (typeof REF_EVENT_TYPES)[number]) => `registry-refs-${type.replace('.', '-')}`;
/** Two-key advisory lock class (the single-key locks used elsewhere are another key space). */
const REFS_LOCK_CLASS = 0x52454653; // 'REFS'

/** Pure: what one rollout event means for the set of packages unfinished rollouts reference. */
export function refChange(type: string, data: unknown): { rolloutId: string; add: PackageRef[] } | { rolloutId: string; remove: true } | null {
  const d = data as { rolloutId?: string; update?: { targets?: { packages: PackageRef[] }[] } };
  if (!d?.rolloutId) return null;
  if (type === 'rollout.created') {
    const refs = new Map<string, PackageRef>();
    for (const t of d.update?.targets ?? []) for (const p of t.packages) refs.set(packageId(p), { name: p.name, version: p.version });
    return { rolloutId: d.rolloutId, add: [...refs.values()] };
  }
  return (FINISHED as readonly string[]).includes(type) ? { rolloutId: d.rolloutId, remove: true } : null;
}

/**
 * Applies one reference change. The created and finished events arrive on separate consumers, so in
 * any order: a finished rollout is recorded (and its references dropped), and a created event of a
 * rollout recorded as finished adds nothing. Both take the rollout's lock, so they never interleave.
 */
export async function applyRefChange(db: SqlPool, change: NonNullable<ReturnType<typeof refChange>>): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [REFS_LOCK_CLASS, change.rolloutId]);
    if ('remove' in change) {
      await tx.query('INSERT INTO registry_finished_rollouts (rollout_id) VALUES ($1) ON CONFLICT DO NOTHING', [change.rolloutId]);
      await tx.query('DELETE FROM registry_rollout_refs WHERE rollout_id = $1', [change.rolloutId]);
    } else if (change.add.length > 0) {
      await tx.query(
        `INSERT INTO registry_rollout_refs (rollout_id, name, version) SELECT $1, n, v FROM unnest($2::text[], $3::text[]) AS r(n, v)
         WHERE NOT EXISTS (SELECT 1 FROM registry_finished_rollouts WHERE rollout_id = $1) ON CONFLICT DO NOTHING`,
        [change.rolloutId, change.add.map((p) => p.name), change.add.map((p) => p.version)],
      );
    }
  });
}

/**
 * Creates the consumers that are missing. Where the one-consumer-for-everything of earlier versions
 * exists, they start after what it acknowledged (so a rollout it saw finish is not replayed from
 * its created event alone) and it is then deleted; otherwise from the start of the stream.
 */
async function ensureConsumers(jsm: JetStreamManager): Promise<void> {
  const legacy = await jsm.consumers.info(STREAMS.events, LEGACY_DURABLE).catch((e: unknown) => {
    if (consumerNotFound(e)) return null;
    throw e;
  });
  const start: Partial<ConsumerConfig> = legacy ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: legacy.ack_floor.stream_seq + 1 } : { deliver_policy: DeliverPolicy.All };
  for (const type of REF_EVENT_TYPES) {
    await ensureDurable(jsm, { durable_name: refsDurable(type), filter_subject: eventSubject(type), ack_policy: AckPolicy.Explicit, ...start });
  }
  if (legacy) await jsm.consumers.delete(STREAMS.events, LEGACY_DURABLE).catch((e: unknown) => (consumerNotFound(e) ? true : Promise.reject(e)));
}

/**
 * Follows the rollout events that change references on CHANGEOVER_EVENTS (one durable consumer per
 * event subject, shared by registry instances: none of the rest of a rollout's events is delivered)
 * to know which package versions unfinished rollouts reference, so retention never prunes them.
 * Waits in the background for the stream to exist.
 */
export function startRolloutRefs(nc: NatsConnection, db: SqlPool, log: Logger, retryMs = 2000): Promise<{ stop(): Promise<void> }> {
  return followDurables(nc, {
    durables: REF_EVENT_TYPES.map(refsDurable),
    prepare: ensureConsumers,
    what: 'rollout references',
    log,
    retryMs,
    async handle(m) {
      try {
        const ce = parseCloudEvent(m.json());
        const change = refChange(fromCloudEventType(ce.type), ce.data);
        if (change) await applyRefChange(db, change);
        m.ack();
      } catch (err) {
        // Unknown or malformed events are skipped; a database failure is retried by redelivery.
        if (isChangeoverError(err, 'VALIDATION_FAILED') || isChangeoverError(err, 'NOT_FOUND')) m.ack();
        else m.nak(1000);
        log.warn({ err }, 'rollout event not applied');
      }
    },
  });
}

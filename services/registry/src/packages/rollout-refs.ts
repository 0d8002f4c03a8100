import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { eventSubject, fromCloudEventType, isChangeoverError, packageId, parseCloudEvent, ROOT, STREAMS, type PackageRef } from '@changeover/contracts';
import type { SqlPool } from '../db/sql.js';
import type { Logger } from '../observability.js';

const DURABLE = 'registry-rollout-refs';
const FINISHED = new Set(['rollout.completed', 'rollout.failed', 'rollout.cancelled']);
/** The subjects of the only events that change references: the rest of a rollout's stream (20,000 events for 10,000 nodes) is acked unread. */
const RELEVANT = new Set(['rollout.created', ...FINISHED].map(eventSubject));

/** Pure: what one rollout event means for the set of packages unfinished rollouts reference. */
export function refChange(type: string, data: unknown): { rolloutId: string; add: PackageRef[] } | { rolloutId: string; remove: true } | null {
  const d = data as { rolloutId?: string; update?: { targets?: { packages: PackageRef[] }[] } };
  if (!d?.rolloutId) return null;
  if (type === 'rollout.created') {
    const refs = new Map<string, PackageRef>();
    for (const t of d.update?.targets ?? []) for (const p of t.packages) refs.set(packageId(p), { name: p.name, version: p.version });
    return { rolloutId: d.rolloutId, add: [...refs.values()] };
  }
  return FINISHED.has(type) ? { rolloutId: d.rolloutId, remove: true } : null;
}

/**
 * Follows rollout events on CHANGEOVER_EVENTS (durable consumer shared by registry instances) to
 * know which package versions unfinished rollouts reference, so retention never prunes them.
 * Waits in the background for the stream to exist.
 */
export async function startRolloutRefs(nc: NatsConnection, db: SqlPool, log: Logger, retryMs = 2000): Promise<{ stop(): Promise<void> }> {
  let stopped = false;
  let messages: ConsumerMessages | undefined;
  let timer: NodeJS.Timeout | undefined;
  const apply = async (type: string, data: unknown) => {
    const change = refChange(type, data);
    if (!change) return;
    if ('remove' in change) await db.query('DELETE FROM registry_rollout_refs WHERE rollout_id = $1', [change.rolloutId]);
    else if (change.add.length > 0) {
      await db.query(
        `INSERT INTO registry_rollout_refs (rollout_id, name, version) SELECT $1, n, v FROM unnest($2::text[], $3::text[]) AS r(n, v) ON CONFLICT DO NOTHING`,
        [change.rolloutId, change.add.map((p) => p.name), change.add.map((p) => p.version)],
      );
    }
  };
  const attach = async () => {
    if (stopped) return;
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.info(STREAMS.events);
      await jsm.consumers.add(STREAMS.events, { durable_name: DURABLE, filter_subject: `${ROOT}.events.rollout.>`, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All });
      const consumer = await jetstream(nc).consumers.get(STREAMS.events, DURABLE);
      messages = await consumer.consume();
      void (async () => {
        for await (const m of messages!) {
          if (!RELEVANT.has(m.subject)) {
            m.ack();
            continue;
          }
          try {
            const ce = parseCloudEvent(m.json());
            await apply(fromCloudEventType(ce.type), ce.data);
            m.ack();
          } catch (err) {
            // Unknown or malformed events are skipped; a database failure is retried by redelivery.
            if (isChangeoverError(err, 'VALIDATION_FAILED') || isChangeoverError(err, 'NOT_FOUND')) m.ack();
            else m.nak(1000);
            log.warn({ err }, 'rollout event not applied');
          }
        }
      })();
    } catch (err) {
      log.debug({ err }, `${STREAMS.events} not available yet; rollout references retried`);
      timer = setTimeout(() => void attach(), retryMs);
    }
  };
  await attach();
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await messages?.close();
    },
  };
}

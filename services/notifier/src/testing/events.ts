import { randomUUID } from 'node:crypto';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { STREAMS, eventSubject, subjects, toCloudEvent, type CloudEvent, type EventData, type EventType } from '@changeover/contracts';

/** Plays the outbox relay: creates CHANGEOVER_EVENTS and publishes CloudEvents with Nats-Msg-Id = event id. */
export async function eventPublisher(url: string) {
  const nc: NatsConnection = await connect({ servers: url });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: STREAMS.events, subjects: [subjects.eventsAll] }).catch(async () => jsm.streams.info(STREAMS.events));
  const js = jetstream(nc);
  let position = 0;
  return {
    nc,
    /** A CloudEvent as the relay would publish it. */
    cloudEvent<T extends EventType>(type: T, data: EventData<T>, streamId = 'rollout-r1', id: string = randomUUID()): CloudEvent {
      position += 1;
      return toCloudEvent({ id, type, streamId, globalPosition: position, data, createdAt: new Date() });
    },
    async publish(ce: CloudEvent | { type: string; id: string; [k: string]: unknown }, subject?: string) {
      const type = ce.type.replace(/^io\.changeover\./, '');
      const h = headers();
      h.set('Nats-Msg-Id', ce.id);
      return js.publish(subject ?? eventSubject(type), JSON.stringify(ce), { headers: h });
    },
    async publishRaw(subject: string, payload: string | Uint8Array) {
      return js.publish(subject, payload);
    },
    close: () => nc.close(),
  };
}
export type EventPublisher = Awaited<ReturnType<typeof eventPublisher>>;

const at = '2025-01-01T00:00:00.000Z';

/** Valid data for the events notified by default. */
export const sample = {
  blocked: (rolloutId = 'r1'): EventData<'rollout.blocked'> => ({
    rolloutId,
    attempt: 1,
    vetoes: [{ nodeId: 'node-7', processId: 'billing-worker', module: 'billing', reason: 'PROCESS_BUSY', message: 'closing the month', retryAfterMs: 60_000 }],
    vetoCount: 1,
    vetoingNodes: 1,
    at,
  }),
  discrepancy: (rolloutId = 'r1'): EventData<'rollout.dependency-discrepancy'> => ({
    rolloutId,
    discrepancy: { kind: 'API_UNPROVIDED', nodeId: 'node-3', package: 'billing', missing: 'auth-api@^2', message: 'no package provides auth-api@^2' },
    at,
  }),
  paused: (rolloutId = 'r1'): EventData<'rollout.paused'> => ({ rolloutId, reason: 'error threshold 10% crossed', failed: 3, committed: 20, at }),
  completed: (rolloutId = 'r1'): EventData<'rollout.completed'> => ({ rolloutId, nodes: 30, failed: 0, at }),
  failed: (rolloutId = 'r1'): EventData<'rollout.failed'> => ({ rolloutId, reason: 'aborted by threshold', at }),
  refused: (): EventData<'cluster-version.adjust-refused'> => ({
    version: 3,
    by: 'alice',
    blockers: [
      { code: 'NODE_NOT_ACTIVE', nodeId: 'node-9', message: 'no heartbeat for 5 minutes' },
      { code: 'GROUP_PARTITIONED', groupId: 'orders', members: ['a', 'b'], message: 'members disagree' },
    ],
    at,
  }),
  adjusted: (): EventData<'cluster-version.adjusted'> => ({ adjustmentId: 'adj-1', version: 3, groups: 4, at }),
  progressed: (rolloutId = 'r1'): EventData<'rollout.node-progressed'> => ({ rolloutId, nodeId: 'node-1', phase: 'fetching', at }),
};

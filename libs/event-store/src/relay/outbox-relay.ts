import { ChangeoverError, eventSubject, STREAMS, subjects, toCloudEvent } from '@changeover/contracts';
import { jetstreamManager, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { ensureStreamConfig } from '@changeover/messaging';
import { headers, nanos, type NatsConnection } from '@nats-io/transport-node';
import type { EventStore } from '../event-store.js';
import type { StoredEvent, Subscription } from '../types.js';
import { assertSubscriptionName, optionalInt } from '../validation/input.validate.js';
import { PipelinedPublisher } from './pipelined-publisher.js';

export interface OutboxRelayOptions {
  store: EventStore;
  nats: NatsConnection;
  /** JetStream stream (default CHANGEOVER_EVENTS); created when missing. */
  streamName?: string;
  /** CloudEvents `source` (default 'changeover'). */
  source?: string;
  /** Checkpoint name (default 'outbox-relay'). */
  subscriptionName?: string;
  /** Events published in flight before their acks are awaited (default 1000). */
  batchSize?: number;
  /** Fallback poll (default 1000 ms); commits wake the relay at once. */
  pollMs?: number;
  /** De-duplication window when the stream is created (default 2 minutes). */
  duplicateWindowMs?: number;
  /** Replicas of the events stream (NATS_STREAM_REPLICAS, default 1); an existing stream is moved to this many. */
  replicas?: number;
  onError?: (error: unknown) => void;
  /**
   * One relay per checkpoint name publishes at a time (default true): several service instances
   * (or a standalone relay) share the work of one without each publishing every event.
   */
  exclusive?: boolean;
}

export interface OutboxRelay {
  /** Last appended global position minus the relay's checkpoint: export it as a gauge. */
  lag(): number;
  /** Last global position acknowledged by JetStream and checkpointed. */
  position(): bigint;
  caughtUpTo(position: bigint, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
const HEADER_SAFE = /^[\x20-\x7e]{1,512}$/;
const STREAM_NAME = /^[A-Za-z0-9_-]{1,64}$/;

function invalid(field: string, message: string): ChangeoverError {
  return new ChangeoverError('VALIDATION_FAILED', `${field}: ${message}`, { field });
}

/** Creates the events stream if it is missing, or moves it to `replicas` (a concurrent creator winning is fine). */
export async function ensureEventsStream(jsm: JetStreamManager, name: string, duplicateWindowMs: number, replicas = 1): Promise<void> {
  await ensureStreamConfig(jsm, { name, subjects: [subjects.eventsAll], storage: StorageType.File, duplicate_window: nanos(duplicateWindowMs) }, replicas);
}

/**
 * Publishes every stored event, in global order, to JetStream as a CloudEvent with
 * Nats-Msg-Id = event id (so a replay after a crash is de-duplicated) and the event's traceparent
 * as a header. Publishes are pipelined per batch; the checkpoint moves only after every ack.
 */
export async function startOutboxRelay(options: OutboxRelayOptions): Promise<OutboxRelay> {
  if (typeof options !== 'object' || options === null) throw invalid('options', 'must be an object');
  const { store, nats } = options;
  if (typeof store?.subscribe !== 'function') throw invalid('store', 'must be an EventStore');
  if (typeof nats?.publish !== 'function') throw invalid('nats', 'must be a NATS connection');
  const streamName = options.streamName ?? STREAMS.events;
  if (typeof streamName !== 'string' || !STREAM_NAME.test(streamName)) throw invalid('streamName', 'must match [A-Za-z0-9_-]{1,64}');
  const source = options.source ?? 'changeover';
  if (typeof source !== 'string' || source.length === 0 || source.length > 256) throw invalid('source', 'must be a string of 1 to 256 characters');
  const name = assertSubscriptionName(options.subscriptionName ?? 'outbox-relay', 'subscriptionName');
  const batchSize = optionalInt(options.batchSize, 'batchSize', 1000, 1, 10_000);
  const duplicateWindowMs = optionalInt(options.duplicateWindowMs, 'duplicateWindowMs', 120_000, 1000, 86_400_000);

  const replicas = optionalInt(options.replicas, 'replicas', 1, 1, 5);

  await ensureEventsStream(await jetstreamManager(nats), streamName, duplicateWindowMs, replicas);
  const publisher = new PipelinedPublisher(nats, streamName);

  // Every ack is awaited (even after a failure) so no publish of this batch is still in flight on retry.
  const publishBatch = (events: StoredEvent[]) =>
    publisher.publishAll(
      events.map((event) => {
        const h = headers();
        // The de-duplication key: a batch published again after a crash is dropped by the stream.
        h.set('Nats-Msg-Id', event.id);
        const traceparent = event.metadata.traceparent;
        if (typeof traceparent === 'string' && TRACEPARENT.test(traceparent)) {
          h.set('traceparent', traceparent);
          const tracestate = event.metadata.tracestate;
          if (typeof tracestate === 'string' && HEADER_SAFE.test(tracestate)) h.set('tracestate', tracestate);
        }
        return { subject: eventSubject(event.type), payload: JSON.stringify(toCloudEvent(event, source)), headers: h };
      }),
    );

  const subscription: Subscription = await store.subscribe(name, publishBatch, {
    batchSize,
    pollMs: optionalInt(options.pollMs, 'pollMs', 1000, 1, 3_600_000),
    exclusive: options.exclusive ?? true,
    ...(options.onError ? { onError: options.onError } : {}),
  });
  return {
    lag: () => subscription.lag(),
    position: () => subscription.position(),
    caughtUpTo: (position, timeoutMs) => subscription.caughtUpTo(position, timeoutMs),
    stop: async () => {
      await subscription.stop();
      publisher.close();
    },
  };
}

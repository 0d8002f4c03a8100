import { z } from 'zod';
import { ChangeoverError } from './errors.js';
import { EVENT_SCHEMAS, eventAggregate, isEventType, type EventType } from './events.js';
import { subjects } from './subjects.js';
import { parse } from './validate.js';

export const CLOUDEVENT_TYPE_PREFIX = 'io.changeover.';

/** CloudEvents 1.0 structured-mode JSON, as published on CHANGEOVER_EVENTS. */
export const CloudEvent = z.object({
  specversion: z.literal('1.0'),
  id: z.string().min(1).max(128),
  source: z.string().min(1).max(256),
  type: z.string().startsWith(CLOUDEVENT_TYPE_PREFIX).max(128),
  subject: z.string().max(256).optional(),
  time: z.string(),
  datacontenttype: z.literal('application/json'),
  /** Global position in the event store: consumers can order and de-duplicate by it. */
  changeoversequence: z.number().int().nonnegative(),
  changeoverstream: z.string().max(256),
  traceparent: z.string().max(128).optional(),
  data: z.unknown(),
});
export type CloudEvent = z.infer<typeof CloudEvent>;

/** `rollout.votes-recorded` → `io.changeover.rollout.votes-recorded`. */
export const toCloudEventType = (type: string) => `${CLOUDEVENT_TYPE_PREFIX}${type}`;
export const fromCloudEventType = (ceType: string) => (ceType.startsWith(CLOUDEVENT_TYPE_PREFIX) ? ceType.slice(CLOUDEVENT_TYPE_PREFIX.length) : ceType);

/** The JetStream subject an event is published on: changeover.events.<aggregate>.<rest>. */
export function eventSubject(type: string): string {
  const aggregate = eventAggregate(type);
  return subjects.event(aggregate, type.slice(aggregate.length + 1));
}

export interface StoredEventLike {
  id: string;
  type: string;
  streamId: string;
  globalPosition: bigint | number;
  data: unknown;
  createdAt: Date | string;
  metadata?: { traceparent?: string; subject?: string } & Record<string, unknown>;
}

/** Wraps a stored event as a CloudEvent. */
export function toCloudEvent(event: StoredEventLike, source = 'changeover'): CloudEvent {
  const data = event.data as Record<string, unknown> | null;
  const subject = event.metadata?.subject ?? (typeof data?.['rolloutId'] === 'string' ? (data['rolloutId'] as string) : event.streamId);
  const ce: CloudEvent = {
    specversion: '1.0',
    id: event.id,
    source,
    type: toCloudEventType(event.type),
    subject,
    time: typeof event.createdAt === 'string' ? event.createdAt : event.createdAt.toISOString(),
    datacontenttype: 'application/json',
    changeoversequence: Number(event.globalPosition),
    changeoverstream: event.streamId,
    data: event.data,
  };
  if (event.metadata?.traceparent) ce.traceparent = event.metadata.traceparent;
  return ce;
}

/** Validates a CloudEvent and its data against the event's schema. Unknown types throw NOT_FOUND. */
export function parseCloudEvent(value: unknown): CloudEvent & { eventType: EventType } {
  const ce = parse(CloudEvent, value, 'cloudevent');
  const type = fromCloudEventType(ce.type);
  if (!isEventType(type)) throw new ChangeoverError('NOT_FOUND', `unknown event type ${ce.type}`);
  const data = parse(EVENT_SCHEMAS[type], ce.data, `${type} data`);
  return { ...ce, data, eventType: type };
}

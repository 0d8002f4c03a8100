import { EVENT_SCHEMAS, parse, type EventData, type EventType } from '@changeover/contracts';
import type { AppendResult, ExpectedVersion, NewEvent } from '@changeover/event-store';
import type { Counters, Logger } from '../observability.js';

/** The part of the event store the registry uses. */
export interface EventAppender {
  append(streamId: string, expectedVersion: ExpectedVersion, events: NewEvent[]): Promise<AppendResult>;
}

type RegistryEventType = Extract<EventType, `package.${string}` | `node.${string}` | `class.${string}`>;

export interface RegistryEvent<T extends RegistryEventType = RegistryEventType> {
  streamId: string;
  type: T;
  data: EventData<T>;
}

export const streams = {
  package: (name: string) => `package-${name}`,
  node: (nodeId: string) => `node-${nodeId}`,
  class: (classId: string) => `class-${classId}`,
};

/**
 * Appends registry events after the row they describe has committed (the row is the source of
 * truth; the event store's outbox relays them onto CHANGEOVER_EVENTS). A failed append is logged
 * and counted, never turned into a failed request for a change already stored.
 */
export class RegistryEvents {
  constructor(
    private readonly store: EventAppender,
    private readonly log: Logger,
    private readonly counters: Counters,
  ) {}

  static event<T extends RegistryEventType>(streamId: string, type: T, data: EventData<T>): RegistryEvent<T> {
    return { streamId, type, data: parse(EVENT_SCHEMAS[type], data, `${type} event`) as EventData<T> };
  }

  async emit(events: readonly RegistryEvent[]): Promise<void> {
    const byStream = new Map<string, NewEvent[]>();
    for (const e of events) byStream.set(e.streamId, [...(byStream.get(e.streamId) ?? []), { type: e.type, data: e.data, metadata: { actor: 'registry' } }]);
    const pending = [...byStream];
    // A few streams at a time: a sweep can produce thousands of single-event streams.
    const worker = async () => {
      for (let next = pending.shift(); next; next = pending.shift()) {
        const [streamId, batch] = next;
        try {
          await this.store.append(streamId, 'any', batch);
          this.counters.inc('registry_events_appended_total', batch.length);
        } catch (e) {
          this.counters.inc('registry_event_append_failures_total', batch.length);
          this.log.error({ err: e, streamId, types: batch.map((b) => b.type) }, 'event append failed');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, pending.length) }, worker));
  }
}

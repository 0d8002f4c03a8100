import { EVENT_SCHEMAS, parse, type EventData, type EventType } from '@changeover/contracts';
import { auditMetadataOr } from '@changeover/http-auth';
import type { AppendResult, NewEvent, TransactionAppend, TransactionClient } from '@changeover/event-store';
import type { Tx } from '../db/sql.js';
import type { Counters, Logger } from '../observability.js';
import { changeoverMetrics } from '@changeover/telemetry';

/** The part of the event store the registry uses: appends inside the registry's own transactions. */
export interface EventAppender {
  appendAllInTransaction(client: TransactionClient, appends: readonly TransactionAppend[]): Promise<AppendResult[]>;
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
  /** Every node.inventories-changed (a batch names many nodes, so it has no node's stream). */
  nodeInventories: 'inventories',
  class: (classId: string) => `class-${classId}`,
};

/**
 * Appends registry events in the transaction that writes the rows they describe, so a row and its
 * event commit together or not at all (the event store's outbox relays them onto CHANGEOVER_EVENTS).
 * A failed append throws, which rolls the row back: the caller answers with a typed error.
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

  /** Appends `events` inside `tx` (one version read and one INSERT for all their streams). */
  async appendIn(tx: Tx, events: readonly RegistryEvent[]): Promise<void> {
    if (events.length === 0) return;
    const byStream = new Map<string, NewEvent[]>();
    for (const e of events) byStream.set(e.streamId, [...(byStream.get(e.streamId) ?? []), { type: e.type, data: e.data, metadata: auditMetadataOr('registry') }]);
    try {
      await this.store.appendAllInTransaction(tx.client, [...byStream].map(([streamId, batch]) => ({ streamId, expectedVersion: 'any' as const, events: batch })));
      this.counters.inc('registry_events_appended_total', events.length);
      changeoverMetrics.eventsAppended.inc(events.length);
    } catch (e) {
      this.counters.inc('registry_event_append_failures_total', events.length);
      this.log.error({ err: e, streams: [...byStream.keys()].slice(0, 10), types: [...new Set(events.map((x) => x.type))] }, 'event append failed; the change is rolled back');
      throw e;
    }
  }
}

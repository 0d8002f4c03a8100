import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { CloudEvent, EVENT_SCHEMAS, eventSubject, fromCloudEventType, isChangeoverError, parse, ROOT, type Inventory } from '@changeover/contracts';
import type { Counters, Logger } from '../observability.js';
import { assertStorable } from '../validation/storable.js';
import { ensureDurable, followDurables } from '../events/durable-consumers.js';
import type { NodeService } from './node.service.js';

/** Durable consumer of the rollout events, shared by registry instances. */
export const INVENTORIES_DURABLE = 'registry-rollout-inventories';
/** Every rollout event, in stream order: the two that carry inventories are read, the rest acknowledged unread. */
const ROLLOUT_EVENTS = `${ROOT}.events.rollout.>`;
const WITH_INVENTORIES: ReadonlySet<string> = new Set([eventSubject('rollout.nodes-completed'), eventSubject('rollout.node-regressed')]);

/**
 * The nodes' inventories a rollout event records (claim 9): a completion batch names each node's
 * inventory by its index in the event's list; a regression carries the node's own, when its agent
 * sent one. Any other event records none. Throws VALIDATION_FAILED for data that is not the event's.
 */
export function inventoriesOf(type: string, data: unknown): { nodeId: string; inventory: Inventory }[] {
  if (type === 'rollout.nodes-completed') {
    const d = parse(EVENT_SCHEMAS['rollout.nodes-completed'], data, 'rollout.nodes-completed event');
    return d.nodes.flatMap((n) => {
      const inventory = d.inventories[n.inventory];
      return inventory ? [{ nodeId: n.nodeId, inventory }] : [];
    });
  }
  if (type === 'rollout.node-regressed') {
    const d = parse(EVENT_SCHEMAS['rollout.node-regressed'], data, 'rollout.node-regressed event');
    return d.inventory ? [{ nodeId: d.nodeId, inventory: d.inventory }] : [];
  }
  return [];
}

/**
 * Keeps each node's inventory from the rollout events on CHANGEOVER_EVENTS: a wave's completions
 * are a few events of up to 5,000 nodes each, written in one statement apiece, instead of one agent
 * report per node for the registry to take besides the rollout service. The consumer is durable, so
 * completions recorded while the registry is down are stored when it is back. Hello reports still
 * bring each node's inventory when its agent starts or reconnects, and a heartbeat claiming another
 * digest marks the stored one stale. Waits in the background for the stream to exist; a consumer
 * made now starts at the events since this call.
 */
export function startRolloutInventories(nc: NatsConnection, nodes: NodeService, counters: Counters, log: Logger, retryMs = 2000): Promise<{ stop(): Promise<void> }> {
  const since = new Date();
  return followDurables(nc, {
    durables: [INVENTORIES_DURABLE],
    prepare: (jsm) =>
      ensureDurable(jsm, {
        durable_name: INVENTORIES_DURABLE,
        filter_subject: ROLLOUT_EVENTS,
        ack_policy: AckPolicy.Explicit,
        // One event at a time over all instances: a node's later inventory is never written before an earlier one.
        max_ack_pending: 1,
        // From this registry's start: what came before reached the registry as the agents' own reports.
        deliver_policy: DeliverPolicy.StartTime,
        opt_start_time: since.toISOString(),
      }),
    what: 'rollout inventories',
    log,
    retryMs,
    async handle(m) {
      if (!WITH_INVENTORIES.has(m.subject)) return m.ack();
      try {
        const ce = parse(CloudEvent, m.json(), 'cloudevent');
        const entries = inventoriesOf(fromCloudEventType(ce.type), ce.data);
        for (const inventory of new Set(entries.map((e) => e.inventory))) assertStorable(inventory, 'inventory of a rollout event');
        if (entries.length > 0) await nodes.recordRolloutInventories(entries);
        m.ack();
      } catch (err) {
        // A malformed event is counted and skipped; a database failure is retried by redelivery.
        if (isChangeoverError(err, 'VALIDATION_FAILED') || err instanceof SyntaxError) {
          counters.inc('registry_rollout_inventories_total', 1, { outcome: 'invalid' });
          m.ack();
        } else m.nak(1000);
        log.warn({ err }, 'rollout event inventories not stored');
      }
    },
  });
}

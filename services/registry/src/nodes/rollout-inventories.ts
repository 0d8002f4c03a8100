import { AckPolicy, DeliverPolicy, JetStreamApiError, jetstream, jetstreamManager, type ConsumerMessages, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { CloudEvent, EVENT_SCHEMAS, eventSubject, fromCloudEventType, isChangeoverError, parse, ROOT, STREAMS, type Inventory } from '@changeover/contracts';
import type { Counters, Logger } from '../observability.js';
import { assertStorable } from '../validation/storable.js';
import type { NodeService } from './node.service.js';

/** Durable consumer of the rollout events, shared by registry instances. */
export const INVENTORIES_DURABLE = 'registry-rollout-inventories';
/** Every rollout event, in stream order: the two that carry inventories are read, the rest acknowledged unread. */
const ROLLOUT_EVENTS = `${ROOT}.events.rollout.>`;
const WITH_INVENTORIES: ReadonlySet<string> = new Set([eventSubject('rollout.nodes-completed'), eventSubject('rollout.node-regressed')]);
const CONSUMER_NOT_FOUND = 10014;

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

async function ensureConsumer(jsm: JetStreamManager, since: Date): Promise<void> {
  const exists = await jsm.consumers.info(STREAMS.events, INVENTORIES_DURABLE).then(
    () => true,
    (e: unknown) => {
      if (e instanceof JetStreamApiError && e.code === CONSUMER_NOT_FOUND) return false;
      throw e;
    },
  );
  if (exists) return;
  try {
    await jsm.consumers.add(STREAMS.events, {
      durable_name: INVENTORIES_DURABLE,
      filter_subject: ROLLOUT_EVENTS,
      ack_policy: AckPolicy.Explicit,
      // One event at a time over all instances: a node's later inventory is never written before an earlier one.
      max_ack_pending: 1,
      // From this registry's start: what came before reached the registry as the agents' own reports.
      deliver_policy: DeliverPolicy.StartTime,
      opt_start_time: since.toISOString(),
    });
  } catch (e) {
    // Another instance created it meanwhile: it is used as it is.
    await jsm.consumers.info(STREAMS.events, INVENTORIES_DURABLE).catch(() => {
      throw e;
    });
  }
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
export async function startRolloutInventories(nc: NatsConnection, nodes: NodeService, counters: Counters, log: Logger, retryMs = 2000): Promise<{ stop(): Promise<void> }> {
  const since = new Date();
  let stopped = false;
  let open: ConsumerMessages | undefined;
  let timer: NodeJS.Timeout | undefined;
  const follow = (messages: ConsumerMessages) =>
    void (async () => {
      for await (const m of messages) {
        if (!WITH_INVENTORIES.has(m.subject)) {
          m.ack();
          continue;
        }
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
      }
    })();
  const attach = async () => {
    if (stopped) return;
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.info(STREAMS.events);
      await ensureConsumer(jsm, since);
      const messages = await (await jetstream(nc).consumers.get(STREAMS.events, INVENTORIES_DURABLE)).consume();
      // Stopped while attaching: closed at once.
      if (stopped) return void (await messages.close());
      open = messages;
      follow(messages);
    } catch (err) {
      log.debug({ err }, `${STREAMS.events} not available yet; rollout inventories retried`);
      timer = setTimeout(() => void attach(), retryMs);
    }
  };
  await attach();
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await open?.close();
    },
  };
}

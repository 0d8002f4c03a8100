import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import { ChangeoverError, subjects, type AgentReport } from '@changeover/contracts';
import { injectTraceHeaders } from '@changeover/telemetry';
import type { Log, ReportSink } from '../core/ports.js';

export interface BatchedSink extends ReportSink {
  /** Hands every report still held to the connection now (before a drain or close). */
  flush(): void;
}

/** The JSON text of each inventory object seen: nodes on the same sets share one (read-only) inventory object. */
const inventoryJson = new WeakMap<object, string>();

/**
 * The report as JSON bytes, byte for byte what `encode` of the contracts gives. A report whose last
 * member is an inventory (progress at the end of a changeover, inventory) reuses that inventory's
 * text instead of writing it out again for every node. Bytes come from Buffer.from, which cuts small
 * payloads from a shared pool instead of allocating a buffer for each as TextEncoder does.
 */
export function encodeReport(body: unknown): Uint8Array {
  let text: string | undefined;
  try {
    text = jsonOf(body);
  } catch (e) {
    throw new ChangeoverError('VALIDATION_FAILED', `cannot encode message as JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (text === undefined) throw new ChangeoverError('VALIDATION_FAILED', `cannot encode message as JSON: ${typeof body}`);
  return Buffer.from(text, 'utf8');
}

function jsonOf(body: unknown): string | undefined {
  if (body === null || typeof body !== 'object' || Array.isArray(body) || Object.getPrototypeOf(body) !== Object.prototype) return JSON.stringify(body);
  const record = body as Record<string, unknown>;
  const inventory = record['inventory'];
  if (inventory === null || typeof inventory !== 'object' || Object.getPrototypeOf(inventory) !== Object.prototype) return JSON.stringify(body);
  const keys = Object.keys(record);
  if (keys[keys.length - 1] !== 'inventory' || 'toJSON' in record || 'toJSON' in inventory) return JSON.stringify(body);
  let tail = inventoryJson.get(inventory);
  if (tail === undefined) {
    tail = JSON.stringify(inventory);
    inventoryJson.set(inventory, tail);
  }
  const rest: Record<string, unknown> = {};
  for (let i = 0; i < keys.length - 1; i++) rest[keys[i]!] = record[keys[i]!];
  const head = JSON.stringify(rest);
  return head === '{}' ? `{"inventory":${tail}}` : `${head.slice(0, -1)},"inventory":${tail}}`;
}

/** Reports held before they are handed to the connection in one go (about two socket writes' worth). */
const BATCH_BYTES = 64 * 1024;

/**
 * The reports of many simulated nodes on one shared connection. Each report is encoded, and its
 * trace headers taken, when it is made, exactly as `natsSink` does; it is then held until 64 KiB are
 * waiting or the event loop turns, and the batch is published at once. NATS writes what is
 * published in one synchronous run as one buffer, where a publish per node (its flush queued on a
 * microtask that runs between two nodes' steps) costs a socket write per report. Order is kept.
 */
export function batchedNatsSink(nc: NatsConnection, log: Log): BatchedSink {
  let subjectsOf: string[] = [];
  let payloads: Uint8Array[] = [];
  let headersOf: (MsgHdrs | undefined)[] = [];
  let held = 0;
  let scheduled = false;

  const flush = () => {
    scheduled = false;
    if (!subjectsOf.length) return;
    const s = subjectsOf;
    const p = payloads;
    const h = headersOf;
    subjectsOf = [];
    payloads = [];
    headersOf = [];
    held = 0;
    for (let i = 0; i < s.length; i++) {
      try {
        const headers = h[i];
        nc.publish(s[i]!, p[i]!, headers ? { headers } : undefined);
      } catch (e) {
        // A closed or draining connection: the report is re-derived on the next hello/heartbeat.
        log.warn('report not sent', { subject: s[i], error: e instanceof Error ? e.message : String(e) });
      }
    }
  };

  return {
    publish(nodeId: string, report: AgentReport, body: unknown) {
      let data: Uint8Array;
      let headers: MsgHdrs | undefined;
      let subject: string;
      try {
        subject = subjects.agent(nodeId, report);
        data = encodeReport(body);
        headers = injectTraceHeaders();
      } catch (e) {
        log.warn('report not sent', { nodeId, report, error: e instanceof Error ? e.message : String(e) });
        return;
      }
      subjectsOf.push(subject);
      payloads.push(data);
      headersOf.push(headers);
      held += data.length;
      if (held >= BATCH_BYTES) flush();
      else if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    flush,
  };
}

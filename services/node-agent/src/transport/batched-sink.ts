import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import { encode, subjects, type AgentReport } from '@changeover/contracts';
import { injectTraceHeaders } from '@changeover/telemetry';
import type { Log, ReportSink } from '../core/ports.js';

export interface BatchedSink extends ReportSink {
  /** Hands every report still held to the connection now (before a drain or close). */
  flush(): void;
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
        data = encode(body);
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

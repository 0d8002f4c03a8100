import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JetStreamManager } from '@nats-io/jetstream';
import { STREAMS } from '@changeover/contracts';
import type pg from 'pg';
import { waitFor } from '@changeover/test-kit';

// What end-to-end tests of several instances check: Postgres events against CHANGEOVER_EVENTS, and
// what a webhook receiver got.

/** Every message id (Nats-Msg-Id = event id) on CHANGEOVER_EVENTS, first to last sequence. */
export async function jetStreamEventIds(jsm: JetStreamManager): Promise<string[]> {
  const info = await jsm.streams.info(STREAMS.events);
  const ids: string[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq += 100) {
    const batch = await Promise.all(Array.from({ length: Math.min(100, info.state.last_seq - seq + 1) }, (_, i) => jsm.streams.getMessage(STREAMS.events, { seq: seq + i })));
    for (const m of batch) if (m) ids.push(m.header.get('Nats-Msg-Id'));
  }
  return ids;
}

/**
 * Postgres against CHANGEOVER_EVENTS while the fleet may still append: waits until every event stored at the
 * call is on the stream, then answers the stream's ids, those of them on the stream more than once, and those
 * not in the table as read after the stream (an older snapshot would miss events appended meanwhile).
 */
export async function relayedAgainstStored(jsm: JetStreamManager, storedIds: () => Promise<string[]>, timeoutMs = 60_000) {
  const stored = await storedIds();
  const onStream = await waitFor('every stored event on CHANGEOVER_EVENTS', async () => {
    const got = await jetStreamEventIds(jsm);
    const on = new Set(got);
    return stored.every((id) => on.has(id)) ? got : undefined;
  }, { timeoutMs, intervalMs: 250 });
  const later = new Set(await storedIds());
  return { stored, onStream, repeated: onStream.filter((id, i) => onStream.indexOf(id) !== i), notStored: onStream.filter((id) => !later.has(id)) };
}

export interface StoredEventRow {
  global_position: string;
  event_id: string;
  stream_id: string;
  event_type: string;
}

/** Every stored event in global order. */
export async function storedEvents(sql: pg.Pool): Promise<StoredEventRow[]> {
  return (await sql.query<StoredEventRow>(`SELECT global_position, event_id, stream_id, event_type FROM events ORDER BY global_position`)).rows;
}

/** Whether the outbox relay's checkpoint has reached `position` (default: the head of the events table). */
export async function relayCaughtUp(sql: pg.Pool, position?: string): Promise<boolean> {
  const head = Number(position ?? (await sql.query(`SELECT coalesce(max(global_position), 0) AS p FROM events`)).rows[0].p);
  const at = Number((await sql.query(`SELECT position FROM subscription_checkpoints WHERE subscription_id = 'outbox-relay'`)).rows[0]?.position ?? 0);
  return at >= head;
}

export interface Hooked {
  id: string;
  type: string;
  rolloutId: string | undefined;
}

/** A webhook endpoint that keeps every request's CloudEvent id and type, answering after `delayMs`. */
export async function startWebhookReceiver(delayMs = 0) {
  const received: Hooked[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let rolloutId: string | undefined;
      try {
        rolloutId = (JSON.parse(Buffer.concat(chunks).toString()) as { data?: { rolloutId?: string } }).data?.rolloutId;
      } catch {
        rolloutId = undefined;
      }
      received.push({ id: String(req.headers['ce-id']), type: String(req.headers['ce-type']), rolloutId });
      setTimeout(() => res.writeHead(204).end(), delayMs);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    received,
    /** Distinct event ids received. */
    ids: () => new Set(received.map((r) => r.id)),
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}
export type WebhookReceiver = Awaited<ReturnType<typeof startWebhookReceiver>>;

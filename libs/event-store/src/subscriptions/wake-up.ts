import pg from 'pg';
import { EVENTS_CHANNEL } from '../append/append.sql.js';
import { createPgClient } from '../connection/failover-client.js';

type Listener = (head: bigint) => void;

/**
 * One LISTEN connection per store that wakes every subscription when a batch commits.
 * If it drops, it reconnects; the subscriptions' poll covers the gap.
 */
export class WakeUp {
  private client: pg.Client | undefined;
  private readonly listeners = new Set<Listener>();
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | undefined;

  constructor(private readonly url: string) {}

  async start(): Promise<void> {
    if (this.client || this.closed) return;
    const client = createPgClient(this.url);
    client.on('notification', (msg) => {
      if (msg.channel !== EVENTS_CHANNEL) return;
      const head = /^\d+$/.test(msg.payload ?? '') ? BigInt(msg.payload!) : 0n;
      for (const l of this.listeners) l(head);
    });
    client.on('error', () => this.dropped(client));
    client.on('end', () => this.dropped(client));
    this.client = client;
    try {
      await client.connect();
      await client.query(`LISTEN ${EVENTS_CHANNEL}`);
    } catch {
      this.dropped(client);
    }
  }

  on(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private dropped(client: pg.Client): void {
    if (this.client !== client) return;
    this.client = undefined;
    client.end().catch(() => undefined);
    if (this.closed) return;
    this.reconnectTimer = setTimeout(() => void this.start(), 1000);
    this.reconnectTimer.unref();
  }
}

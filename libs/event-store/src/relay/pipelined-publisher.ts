import { ChangeoverError } from '@changeover/contracts';
import { createInbox, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';

/** What JetStream answers to a publish. */
interface PubAckJson {
  stream?: string;
  seq?: number;
  duplicate?: boolean;
  error?: { code?: number; err_code?: number; description?: string };
}

export interface PipelinedMessage {
  subject: string;
  payload: string | Uint8Array;
  headers: MsgHdrs;
}

interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
}

/**
 * Publishes to a JetStream stream with one reply inbox for every ack (what JetStream clients call
 * asynchronous publishing): a message costs a publish and a map entry, not a request object, a timer
 * and an error with its stack, which at fleet scale was most of the relay's time.
 */
export class PipelinedPublisher {
  private readonly prefix: string;
  private readonly sub: Subscription;
  private readonly waiting = new Map<string, Waiter>();
  private next = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly streamName: string,
    private readonly timeoutMs = 10_000,
  ) {
    // A connection with its own inbox prefix (a confined user) keeps it for the acks.
    const inboxPrefix = (nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix;
    this.prefix = createInbox(inboxPrefix);
    this.sub = nc.subscribe(`${this.prefix}.*`, { callback: (err, msg) => (err ? undefined : this.settle(msg.subject, () => this.verdict(msg))) });
  }

  /** Publishes every message and resolves when all are acknowledged; rejects with the first refusal or timeout, after all settled. */
  async publishAll(messages: readonly PipelinedMessage[]): Promise<void> {
    if (this.sub.isClosed()) throw new ChangeoverError('UNAVAILABLE', 'the publisher is closed');
    const tokens: string[] = [];
    const acks = messages.map(
      (m) =>
        new Promise<void>((resolve, reject) => {
          const token = `${this.prefix}.${++this.next}`;
          tokens.push(token);
          this.waiting.set(token, { resolve, reject });
          m.headers.set('Nats-Expected-Stream', this.streamName);
          this.nc.publish(m.subject, m.payload, { reply: token, headers: m.headers });
        }),
    );
    const timer = setTimeout(() => {
      for (const t of tokens) this.settle(t, () => new ChangeoverError('TIMEOUT', `no JetStream ack within ${this.timeoutMs} ms`));
    }, this.timeoutMs);
    try {
      const settled = await Promise.allSettled(acks);
      const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (failed) throw failed.reason;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.sub.unsubscribe();
    for (const t of [...this.waiting.keys()]) this.settle(t, () => new ChangeoverError('UNAVAILABLE', 'the publisher closed before the ack'));
  }

  private settle(token: string, outcome: () => Error | null): void {
    const w = this.waiting.get(token);
    if (!w) return;
    this.waiting.delete(token);
    const e = outcome();
    if (e) w.reject(e);
    else w.resolve();
  }

  private verdict(msg: { headers?: MsgHdrs; data: Uint8Array; json<T>(): T }): Error | null {
    // No stream listens on the subject: the server answers for it.
    if (msg.headers?.code === 503) return new ChangeoverError('UNAVAILABLE', `no JetStream stream takes the subject (stream ${this.streamName} missing?)`);
    let ack: PubAckJson;
    try {
      ack = msg.json<PubAckJson>();
    } catch {
      return new ChangeoverError('UNAVAILABLE', 'JetStream answered a publish with something that is not JSON');
    }
    if (ack.error) return new ChangeoverError('UNAVAILABLE', `JetStream refused the publish: ${ack.error.description ?? `code ${ack.error.code ?? '?'}`}`, { jsErrCode: ack.error.err_code ?? null });
    if (ack.stream !== this.streamName || typeof ack.seq !== 'number') return new ChangeoverError('UNAVAILABLE', `unexpected JetStream ack ${JSON.stringify(ack).slice(0, 200)}`);
    return null;
  }
}

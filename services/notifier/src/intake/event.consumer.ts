import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages } from '@nats-io/jetstream';
import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import { STREAMS, subjects } from '@changeover/contracts';
import { errorText, type Logger } from '../log.js';

const ms = (n: number) => n * 1_000_000;

export interface ConsumerOptions {
  nc: NatsConnection;
  /** Durable consumer name: every notifier instance with this name shares the work. */
  name: string;
  /** Records what the event means; the message is acknowledged only after it resolves. */
  handle: (payload: Uint8Array, headers: MsgHdrs | undefined) => Promise<void>;
  log: Logger;
  /** How long to wait before asking again for a stream that does not exist yet. */
  retryMs?: number;
}

export interface EventConsumer {
  /** True while the consumer is bound to the stream and reading. */
  readonly running: boolean;
  close(): Promise<void>;
}

/** Reads CHANGEOVER_EVENTS through a durable pull consumer, acknowledging each message once handled. */
export function startEventConsumer({ nc, name, handle, log, retryMs = 1000 }: ConsumerOptions): EventConsumer {
  let messages: ConsumerMessages | null = null;
  let closed = false;
  let running = false;
  let wake: (() => void) | null = null;
  const pause = (delay: number) => new Promise<void>((r) => { wake = r; setTimeout(r, delay); });

  const bind = async () => {
    const jsm = await jetstreamManager(nc);
    // Created once; later starts find it and resume where the last one acknowledged.
    await jsm.consumers.info(STREAMS.events, name).catch(() =>
      jsm.consumers.add(STREAMS.events, {
        durable_name: name,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        filter_subject: subjects.eventsAll,
        ack_wait: ms(30_000),
        max_ack_pending: 1000,
      }),
    );
    return jetstream(nc).consumers.get(STREAMS.events, name);
  };

  const loop = async () => {
    while (!closed) {
      try {
        const consumer = await bind();
        messages = await consumer.consume({ max_messages: 200 });
        running = true;
        log.info('consuming events', { stream: STREAMS.events, consumer: name });
        for await (const m of messages) {
          try {
            await handle(m.data, m.headers);
            m.ack();
          } catch (e) {
            // Not recorded (database down?): the stream keeps it and sends it again.
            log.warn('event not recorded, will be redelivered', { seq: m.seq, error: errorText(e) });
            m.nak(retryMs);
          }
        }
      } catch (e) {
        if (!closed) log.warn('cannot consume events yet', { stream: STREAMS.events, error: errorText(e) });
      } finally {
        running = false;
      }
      if (!closed) await pause(retryMs);
    }
  };
  const done = loop();

  return {
    get running() {
      return running;
    },
    async close() {
      closed = true;
      wake?.();
      await messages?.close();
      await done;
    },
  };
}

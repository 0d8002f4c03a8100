import { JetStreamApiError, jetstream, jetstreamManager, type ConsumerConfig, type ConsumerMessages, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { STREAMS } from '@changeover/contracts';
import type { Logger } from '../observability.js';

const CONSUMER_NOT_FOUND = 10014;

/** JetStream's answer for a consumer that does not exist. */
export const consumerNotFound = (e: unknown) => e instanceof JetStreamApiError && e.code === CONSUMER_NOT_FOUND;

/** Whether a durable consumer of CHANGEOVER_EVENTS exists (any other failure rejects). */
export const durableExists = (jsm: JetStreamManager, durable: string): Promise<boolean> =>
  jsm.consumers.info(STREAMS.events, durable).then(
    () => true,
    (e: unknown) => (consumerNotFound(e) ? false : Promise.reject(e)),
  );

/**
 * Creates a durable consumer of CHANGEOVER_EVENTS unless it exists. One that another instance made
 * meanwhile (perhaps from another start) is used as it is.
 */
export async function ensureDurable(jsm: JetStreamManager, config: Partial<ConsumerConfig> & { durable_name: string }): Promise<void> {
  if (await durableExists(jsm, config.durable_name)) return;
  try {
    await jsm.consumers.add(STREAMS.events, config);
  } catch (e) {
    await jsm.consumers.info(STREAMS.events, config.durable_name).catch(() => {
      throw e;
    });
  }
}

/**
 * Follows durable consumers of CHANGEOVER_EVENTS in the background: waits (retrying every `retryMs`)
 * for the stream, lets `prepare` make the consumers, then hands each message of each to `handle`,
 * which acknowledges it. `stop` closes them, also when it comes while they are being opened.
 */
export async function followDurables(
  nc: NatsConnection,
  opts: { durables: readonly string[]; prepare(jsm: JetStreamManager): Promise<void>; handle(m: JsMsg): Promise<void>; what: string; log: Logger; retryMs: number },
): Promise<{ stop(): Promise<void> }> {
  let stopped = false;
  const open: ConsumerMessages[] = [];
  let timer: NodeJS.Timeout | undefined;
  const follow = (messages: ConsumerMessages) =>
    void (async () => {
      for await (const m of messages) await opts.handle(m);
    })();
  const attach = async () => {
    if (stopped) return;
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.info(STREAMS.events);
      await opts.prepare(jsm);
      const js = jetstream(nc);
      for (const durable of opts.durables) {
        const messages = await (await js.consumers.get(STREAMS.events, durable)).consume();
        open.push(messages);
        follow(messages);
      }
      // Stopped while attaching: what was opened after stop() closed the rest is closed too.
      if (stopped) await Promise.all(open.splice(0).map((m) => m.close()));
    } catch (err) {
      await Promise.all(open.splice(0).map((m) => m.close()));
      opts.log.debug({ err }, `${STREAMS.events} not available yet; ${opts.what} retried`);
      timer = setTimeout(() => void attach(), opts.retryMs);
    }
  };
  await attach();
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await Promise.all(open.splice(0).map((m) => m.close()));
    },
  };
}

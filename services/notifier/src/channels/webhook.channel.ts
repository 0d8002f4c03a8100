import { WEBHOOK_HEADERS } from '@changeover/contracts';
import type { Channel, DeliveryJob, SendResult } from './channel.js';
import { postWithTimeout } from './http-post.js';
import { signWebhook } from './webhook.signature.js';

/** The generic webhook: the CloudEvent as structured JSON, signed over timestamp and body. */
export class WebhookChannel implements Channel {
  constructor(
    private readonly timeoutMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  async send({ deliveryId, event, channel }: DeliveryJob): Promise<SendResult> {
    if (channel.type !== 'webhook') throw new TypeError(`webhook channel given a ${channel.type} subscription`);
    const body = JSON.stringify(event);
    const timestamp = String(Math.floor(this.now() / 1000));
    const headers: Record<string, string> = {
      'content-type': 'application/cloudevents+json; charset=utf-8',
      'user-agent': 'changeover-notifier',
      [WEBHOOK_HEADERS.id]: event.id,
      [WEBHOOK_HEADERS.type]: event.type,
      [WEBHOOK_HEADERS.timestamp]: timestamp,
      [WEBHOOK_HEADERS.delivery]: deliveryId,
    };
    if (channel.secret) headers[WEBHOOK_HEADERS.signature] = signWebhook(channel.secret, timestamp, body);
    if (event.traceparent) headers['traceparent'] = event.traceparent;
    return postWithTimeout(channel.url, body, headers, this.timeoutMs);
  }
}

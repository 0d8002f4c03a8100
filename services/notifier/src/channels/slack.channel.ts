import type { Channel, DeliveryJob, SendResult } from './channel.js';
import { describeJob, footerOf } from './event.describer.js';
import { postWithTimeout } from './http-post.js';
import { slackMessage } from './message.format.js';

/** Slack incoming webhook: a readable message rather than the raw event. */
export class SlackChannel implements Channel {
  constructor(private readonly timeoutMs: number) {}

  async send(job: DeliveryJob): Promise<SendResult> {
    if (job.channel.type !== 'slack') throw new TypeError(`slack channel given a ${job.channel.type} subscription`);
    const body = JSON.stringify(slackMessage(describeJob(job), footerOf(job)));
    return postWithTimeout(job.channel.url, body, { 'content-type': 'application/json' }, this.timeoutMs);
  }
}

import type { ChannelConfig, ChannelType, CloudEvent } from '@changeover/contracts';

/** One delivery to send: the stored CloudEvent and the subscription's channel (secret included). */
export interface DeliveryJob {
  deliveryId: string;
  event: CloudEvent;
  channel: ChannelConfig;
}

/** The outcome of one attempt; `permanent` failures are dead-lettered without retrying. */
export interface SendResult {
  ok: boolean;
  permanent: boolean;
  statusCode: number | null;
  error: string | null;
}

export interface Channel {
  send(job: DeliveryJob): Promise<SendResult>;
}

export type Channels = Record<ChannelType, Channel>;

/** 408 and 429 are worth retrying; other 4xx mean the request itself is refused. */
export const isPermanentStatus = (status: number) => status >= 400 && status < 500 && status !== 408 && status !== 429;

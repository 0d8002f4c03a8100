import { z } from 'zod';
import { MAX } from './domain.js';
import { isEventType, type EventType } from './events.js';
import { ClassId, RolloutId } from './ids.js';

// Notifier REST API: subscriptions (who is told what, through which channel) and the delivery log.

export const Severity = z.enum(['info', 'warning', 'critical']);
export type Severity = z.infer<typeof Severity>;

/** What a subscription without an `eventTypes` filter is told about (claims 10, 16, 18). */
export const DEFAULT_NOTIFIED_EVENTS: readonly EventType[] = [
  'rollout.blocked',
  'rollout.dependency-discrepancy',
  'rollout.paused',
  'rollout.failed',
  'rollout.completed',
  'cluster-version.adjust-refused',
  'cluster-version.adjusted',
];

/** `*` means every event type; anything else must be a known domain event type. */
const EventTypeFilter = z.string().max(MAX.name).refine((t) => t === '*' || isEventType(t), { message: 'unknown event type' });
const HttpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).max(2048);
const LabelMap = z.record(z.string().max(MAX.name), z.string().max(MAX.name));

/** Every field narrows; an empty filter means the default event types from anywhere. */
export const SubscriptionFilter = z.strictObject({
  eventTypes: z.array(EventTypeFilter).min(1).max(64).optional(),
  rolloutIds: z.array(RolloutId).min(1).max(256).optional(),
  classIds: z.array(ClassId).min(1).max(256).optional(),
  /** Every label must match on at least one node the event concerns. */
  labels: LabelMap.optional(),
  minSeverity: Severity.optional(),
});
export type SubscriptionFilter = z.infer<typeof SubscriptionFilter>;

export const WebhookChannel = z.strictObject({
  type: z.literal('webhook'),
  url: HttpUrl,
  /** HMAC-SHA256 key; generated when omitted and returned once, on creation. */
  secret: z.string().min(16).max(256).optional(),
});
export const SlackChannel = z.strictObject({ type: z.literal('slack'), url: HttpUrl });
export const EmailChannel = z.strictObject({ type: z.literal('email'), to: z.array(z.email()).min(1).max(50) });
export const ChannelConfig = z.discriminatedUnion('type', [WebhookChannel, SlackChannel, EmailChannel]);
export type ChannelConfig = z.infer<typeof ChannelConfig>;
export type ChannelType = ChannelConfig['type'];
export const CHANNEL_TYPES: readonly ChannelType[] = ['webhook', 'slack', 'email'];

export const CreateSubscriptionRequest = z.strictObject({
  name: z.string().min(1).max(MAX.name),
  channel: ChannelConfig,
  filter: SubscriptionFilter.default({}),
});
export type CreateSubscriptionRequest = z.infer<typeof CreateSubscriptionRequest>;

/** A subscription as the API shows it: the webhook secret only in the answer to its creation. */
export const Subscription = z.strictObject({
  id: z.uuid(),
  name: z.string(),
  channel: ChannelConfig,
  filter: SubscriptionFilter,
  createdAt: z.string(),
});
export type Subscription = z.infer<typeof Subscription>;

export const DeliveryStatus = z.enum(['pending', 'delivered', 'dead']);
export type DeliveryStatus = z.infer<typeof DeliveryStatus>;

export const DeliveryAttempt = z.strictObject({
  attempt: z.number().int().positive(),
  at: z.string(),
  outcome: z.enum(['success', 'failure']),
  statusCode: z.number().int().nullable(),
  latencyMs: z.number().int().nonnegative(),
  error: z.string().nullable(),
});
export type DeliveryAttempt = z.infer<typeof DeliveryAttempt>;

export const Delivery = z.strictObject({
  id: z.uuid(),
  subscriptionId: z.uuid(),
  eventId: z.string(),
  eventType: z.string(),
  channel: z.enum(['webhook', 'slack', 'email']),
  status: DeliveryStatus,
  attemptCount: z.number().int().nonnegative(),
  nextAttemptAt: z.string().nullable(),
  lastStatusCode: z.number().int().nullable(),
  lastError: z.string().nullable(),
  createdAt: z.string(),
  deliveredAt: z.string().nullable(),
});
export type Delivery = z.infer<typeof Delivery>;

export const DeliveryDetail = Delivery.extend({ attempts: z.array(DeliveryAttempt) });
export type DeliveryDetail = z.infer<typeof DeliveryDetail>;

export const ListDeliveriesQuery = z.strictObject({
  subscriptionId: z.uuid().optional(),
  status: DeliveryStatus.optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
export type ListDeliveriesQuery = z.infer<typeof ListDeliveriesQuery>;

/** Webhook headers: the receiver checks `v1=hex(hmac_sha256(secret, timestamp + "." + body))`. */
export const WEBHOOK_HEADERS = {
  id: 'ce-id',
  type: 'ce-type',
  timestamp: 'x-changeover-timestamp',
  signature: 'x-changeover-signature',
  delivery: 'x-changeover-delivery',
} as const;

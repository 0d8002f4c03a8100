import { z } from 'zod';
import { MAX, Text } from './domain.js';
import { Severity } from './notifications.js';

/** A link in a notification (the rollout in the UI, the trace in Jaeger…). */
export const NotificationLink = z.strictObject({
  rel: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'must be a lowercase token'),
  href: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).max(2048),
  title: z.string().max(MAX.name).optional(),
});
export type NotificationLink = z.infer<typeof NotificationLink>;

/** What a user or system is told about one event, whatever the channel (webhook body, Slack text, e-mail). */
export const Notification = z.strictObject({
  id: z.uuid(),
  /** The CloudEvent id of the event this tells about: receivers de-duplicate by it. */
  eventId: z.string().min(1).max(128),
  eventType: z.string().min(1).max(MAX.name),
  severity: Severity,
  title: z.string().min(1).max(256),
  text: Text,
  links: z.array(NotificationLink).max(16).default([]),
  subscriptionId: z.uuid(),
  rolloutId: z.string().max(MAX.name).optional(),
  at: z.iso.datetime({ offset: true }),
});
export type Notification = z.infer<typeof Notification>;

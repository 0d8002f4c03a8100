import { z } from 'zod';
import { MAX, Text, Timestamp } from './domain.js';
import { ClassId, NodeId } from './ids.js';

// ── Rollout controls: per-node retry, start times, maintenance windows (REST and CLI) ──

/** `POST /rollouts/{id}/nodes/{nodeId}/retry`: commit a failed or timed-out node again. */
export const NodeRetryRequest = z.strictObject({ reason: Text.min(1) });
export type NodeRetryRequest = z.infer<typeof NodeRetryRequest>;

/** `POST /rollouts/{id}/retry`: the named nodes, or every failed and timed-out node of the rollout. */
export const RetryRequest = z.strictObject({ reason: Text.min(1), nodeIds: z.array(NodeId).min(1).max(MAX.nodesPerMessage).optional() });
export type RetryRequest = z.infer<typeof RetryRequest>;

export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export const Weekday = z.enum(WEEKDAYS);
export type Weekday = z.infer<typeof Weekday>;

/** Wall-clock time of day, 00:00 to 23:59. */
const TimeOfDay = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'expected HH:MM (00:00-23:59)');

/** Whether the runtime knows the IANA time zone (Intl is the one authority, as it does the arithmetic). */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return tz.length <= 64;
  } catch {
    return false;
  }
}

/**
 * A recurring weekly maintenance window in a time zone: open on each listed day from `start` to
 * `end` local time. An `end` at or before `start` crosses midnight: it closes on the next day.
 */
export const MaintenanceWindow = z
  .strictObject({
    days: z.array(Weekday).min(1).max(7),
    start: TimeOfDay,
    end: TimeOfDay,
    timeZone: z.string().min(1).max(64).refine(isTimeZone, 'not an IANA time zone this runtime knows'),
  })
  .refine((w) => w.start !== w.end, { message: 'start and end must differ', path: ['end'] })
  .refine((w) => new Set(w.days).size === w.days.length, { message: 'a day is listed twice', path: ['days'] });
export type MaintenanceWindow = z.infer<typeof MaintenanceWindow>;

/** `PUT /classes/{classId}/windows`: the class's windows (an empty list: no restriction). */
export const SetClassWindowsRequest = z.strictObject({ windows: z.array(MaintenanceWindow).max(32) });
export type SetClassWindowsRequest = z.infer<typeof SetClassWindowsRequest>;

export const ClassWindows = z.strictObject({
  classId: ClassId,
  windows: z.array(MaintenanceWindow),
  updatedBy: z.string().nullable(),
  updatedAt: z.string().nullable(),
  /** Whether a wave may start now, and when the next window opens (null: open now, or no window). */
  openNow: z.boolean(),
  nextOpening: z.string().nullable(),
});
export type ClassWindows = z.infer<typeof ClassWindows>;

/** The windows a rollout follows: each class's windows when the rollout was created. */
export const RolloutWindows = z.array(z.strictObject({ classId: ClassId, windows: z.array(MaintenanceWindow).min(1).max(32) })).max(1000);
export type RolloutWindows = z.infer<typeof RolloutWindows>;

export const StartAt = Timestamp;

import { z } from 'zod';
import { MAX, Name, SemVer, Text, Timestamp } from './domain.js';
import { ClassId, RolloutId } from './ids.js';
import { RolloutStatus } from './rollout-api.js';

/** The most entries one page of `GET /rollouts` or `GET /audit` holds. */
export const MAX_PAGE_LIMIT = 500;
export const DEFAULT_PAGE_LIMIT = 100;

/** `limit` in a list query: an integer from 1 to MAX_PAGE_LIMIT. */
export const PageLimit = z
  .string()
  .regex(/^\d{1,4}$/, 'expected an integer from 1 to 500')
  .transform(Number)
  .pipe(z.number().int().min(1).max(MAX_PAGE_LIMIT));

/** A comma-separated list in one query parameter (`status=applying,paused`). */
const commaList = <T extends z.ZodType<unknown, string>>(item: T, max: number) =>
  z
    .string()
    .max(1000)
    .transform((s) => s.split(','))
    .pipe(z.array(item).min(1).max(max));

/**
 * An opaque page cursor: base64url of JSON the server wrote. The schema only checks its form;
 * the list that reads it checks its content, so a cursor of another list is a VALIDATION_FAILED too.
 */
export const PageCursor = z.string().min(1).max(512).regex(/^[A-Za-z0-9_-]+$/, 'not a cursor this service handed out');

/** Encodes a page position as an opaque cursor. */
export const encodeCursor = (position: readonly (string | number)[]) => Buffer.from(JSON.stringify(position)).toString('base64url');

/** Decodes a cursor into a position whose items `check` accepts, else undefined. */
export function decodeCursor<T extends readonly unknown[]>(cursor: string, check: (v: unknown) => v is T): T | undefined {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    return check(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

const timeRange = <T extends { [k: string]: unknown }>(from: keyof T & string, to: keyof T & string) => (q: T, ctx: z.core.$RefinementCtx) => {
  const a = q[from];
  const b = q[to];
  if (typeof a === 'string' && typeof b === 'string' && Date.parse(a) > Date.parse(b)) ctx.addIssue({ code: 'custom', message: `${from} must not be after ${to}`, path: [to] });
};

/**
 * `GET /rollouts` query. Every filter narrows the list (AND); `version` needs `package`. Newest
 * first by creation time, then id; `cursor` is the `nextCursor` of the page before.
 */
export const ListRolloutsQuery = z
  .strictObject({
    status: commaList(RolloutStatus, 10).optional(),
    package: Name.optional(),
    version: SemVer.optional(),
    class: ClassId.optional(),
    createdAfter: Timestamp.optional(),
    createdBefore: Timestamp.optional(),
    actor: z.string().min(1).max(MAX.name).optional(),
    cursor: PageCursor.optional(),
    limit: PageLimit.optional(),
  })
  .superRefine((q, ctx) => {
    if (q.version !== undefined && q.package === undefined) ctx.addIssue({ code: 'custom', message: 'version needs package', path: ['version'] });
    timeRange<typeof q>('createdAfter', 'createdBefore')(q, ctx);
  });
export type ListRolloutsQuery = z.infer<typeof ListRolloutsQuery>;

export const RolloutListItem = z.strictObject({
  rolloutId: RolloutId,
  status: RolloutStatus,
  description: z.string(),
  createdBy: z.string().optional(),
  nodes: z.number().int().nonnegative(),
  phases: z.record(z.string(), z.number().int().nonnegative()),
  createdAt: z.string(),
  updatedAt: z.string(),
});
/** A page of rollouts; `nextCursor` is null on the last page. */
export const RolloutList = z.strictObject({ rollouts: z.array(RolloutListItem), nextCursor: z.string().nullable() });
export type RolloutList = z.infer<typeof RolloutList>;

/** The operator actions the audit trail records. */
export const AUDIT_ACTIONS = ['create', 'force', 'cancel', 'revote', 'resume', 'regress', 'pause', 'retry', 'cluster-version-adjust'] as const;
export const AuditAction = z.enum(AUDIT_ACTIONS);
export type AuditAction = z.infer<typeof AuditAction>;

/** `GET /audit` query: every filter narrows the list; newest first; `cursor` is the `nextCursor` of the page before. */
export const AuditQuery = z
  .strictObject({
    actor: z.string().min(1).max(MAX.name).optional(),
    action: commaList(AuditAction, AUDIT_ACTIONS.length).optional(),
    rolloutId: RolloutId.optional(),
    since: Timestamp.optional(),
    until: Timestamp.optional(),
    cursor: PageCursor.optional(),
    limit: PageLimit.optional(),
  })
  .superRefine((q, ctx) => timeRange<typeof q>('since', 'until')(q, ctx));
export type AuditQuery = z.infer<typeof AuditQuery>;

/** One operator action: who, when, on what, why; `outcome` is `refused` for a cluster-version adjustment its checks refused. */
export const AuditEntry = z.strictObject({
  id: z.string(),
  action: AuditAction,
  actor: z.string(),
  actorRole: z.string().nullable(),
  actorTokenId: z.string().nullable(),
  at: z.string(),
  target: z.discriminatedUnion('kind', [z.strictObject({ kind: z.literal('rollout'), rolloutId: RolloutId }), z.strictObject({ kind: z.literal('cluster'), version: z.number().int().positive() })]),
  reason: z.string(),
  outcome: z.enum(['accepted', 'refused']),
  /** Nodes the action named (force, regress, retry), when it named some. */
  nodes: z.number().int().nonnegative().optional(),
});
export type AuditEntry = z.infer<typeof AuditEntry>;
export const AuditList = z.strictObject({ entries: z.array(AuditEntry), nextCursor: z.string().nullable() });
export type AuditList = z.infer<typeof AuditList>;

/** `POST /rollouts/{id}/pause`: an operator stops new waves; nodes mid-changeover finish. */
export const PauseRequest = z.strictObject({ reason: Text.min(1) });
export type PauseRequest = z.infer<typeof PauseRequest>;

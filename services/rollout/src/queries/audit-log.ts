import type pg from 'pg';
import { ChangeoverError, decodeCursor, DEFAULT_PAGE_LIMIT, encodeCursor, type AuditAction, type AuditEntry, type AuditQuery } from '@changeover/contracts';
import { OPERATOR_EVENT_TYPES } from '../infra/rollout.migration.js';

/** The event types each audited action appends. */
const ACTION_TYPES: Record<AuditAction, readonly string[]> = {
  create: ['rollout.created'],
  force: ['rollout.forced'],
  cancel: ['rollout.cancelled'],
  revote: ['rollout.revote-requested'],
  resume: ['rollout.resumed'],
  regress: ['rollout.regress-requested'],
  pause: ['rollout.paused'],
  retry: ['rollout.nodes-retried'],
  'cluster-version-adjust': ['cluster-version.adjust-requested', 'cluster-version.adjust-refused'],
};
const ACTION_OF = new Map(Object.entries(ACTION_TYPES).flatMap(([action, types]) => types.map((t) => [t, action as AuditAction])));

/** Who: the REST caller recorded in the event's metadata, else the actor the event data names. */
const ACTOR = `COALESCE(metadata->>'actor', data->>'by', data->>'createdBy')`;

interface Row {
  global_position: string;
  event_type: string;
  stream_id: string;
  actor: string | null;
  actor_role: string | null;
  actor_token_id: string | null;
  reason: string | null;
  version: number | null;
  nodes: number | null;
  at: Date;
}

/**
 * The audit trail read from the event store: every operator action is an event appended with the
 * caller in its metadata, in the same transaction as the rest of its decision, so the trail and the
 * rollouts never disagree. Events the service appends on its own (a threshold pause, the regression
 * an abort asks for) are not operator actions and are left out.
 */
export class AuditLog {
  constructor(private readonly pool: pg.Pool) {}

  async list(q: AuditQuery): Promise<{ entries: AuditEntry[]; nextCursor: string | null }> {
    const args: unknown[] = [];
    const arg = (v: unknown) => `$${args.push(v)}`;
    // The partial indexes' predicate, repeated literally so the planner can use them.
    const where = [
      `event_type IN (${OPERATOR_EVENT_TYPES.map((t) => `'${t}'`).join(', ')})`,
      `NOT (event_type = 'rollout.regress-requested' AND data->>'by' = 'system')`,
      `NOT (event_type = 'rollout.paused' AND NOT data ? 'by')`,
    ];
    if (q.action) where.push(`event_type = ANY(${arg(q.action.flatMap((a) => ACTION_TYPES[a]))}::text[])`);
    if (q.actor) where.push(`${ACTOR} = ${arg(q.actor)}`);
    if (q.rolloutId) where.push(`stream_id = ${arg(`rollout-${q.rolloutId}`)}`);
    if (q.since) where.push(`created_at >= ${arg(q.since)}`);
    if (q.until) where.push(`created_at < ${arg(q.until)}`);
    if (q.cursor) {
      const at = decodeCursor(q.cursor, isAuditPosition);
      if (!at) throw new ChangeoverError('VALIDATION_FAILED', 'invalid audit query: cursor: not a cursor of this list', { issues: [{ path: ['cursor'], message: 'not a cursor of this list', code: 'custom' }] });
      where.push(`global_position < ${arg(at[0])}::bigint`);
    }
    const limit = q.limit ?? DEFAULT_PAGE_LIMIT;
    // Only the fields an entry shows: a created event of a large fleet carries its whole node list.
    const r = await this.pool.query<Row>(
      `SELECT global_position, event_type, stream_id, ${ACTOR} AS actor, metadata->>'actorRole' AS actor_role, metadata->>'actorTokenId' AS actor_token_id,
              data->>'reason' AS reason, (data->>'version')::int AS version,
              CASE WHEN jsonb_typeof(data->'nodes') = 'array' THEN jsonb_array_length(data->'nodes') WHEN jsonb_typeof(data->'nodeIds') = 'array' THEN jsonb_array_length(data->'nodeIds') END AS nodes, created_at AS at
       FROM events WHERE ${where.join(' AND ')} ORDER BY global_position DESC LIMIT ${arg(limit + 1)}`,
      args,
    );
    const rows = r.rows.slice(0, limit);
    const last = rows.at(-1);
    return { entries: rows.map(entryOf), nextCursor: r.rows.length > limit && last ? encodeCursor([last.global_position]) : null };
  }
}

const isAuditPosition = (v: unknown): v is [string] => Array.isArray(v) && v.length === 1 && typeof v[0] === 'string' && /^\d{1,19}$/.test(v[0]);

function entryOf(row: Row): AuditEntry {
  const action = ACTION_OF.get(row.event_type)!;
  const cluster = action === 'cluster-version-adjust';
  return {
    id: row.global_position,
    action,
    actor: row.actor ?? 'unknown',
    actorRole: row.actor_role,
    actorTokenId: row.actor_token_id,
    at: row.at.toISOString(),
    target: cluster ? { kind: 'cluster', version: row.version ?? 1 } : { kind: 'rollout', rolloutId: row.stream_id.slice('rollout-'.length) },
    reason: row.reason ?? '',
    outcome: row.event_type === 'cluster-version.adjust-refused' ? 'refused' : 'accepted',
    ...(row.nodes !== null && (action === 'force' || action === 'regress' || action === 'retry') ? { nodes: row.nodes } : {}),
  };
}

import { randomBytes } from 'node:crypto';
import {
  AuditQuery,
  CancelRequest,
  ChangeoverError,
  CreateRolloutRequest,
  ForceRequest,
  ListRolloutsQuery,
  NodeId,
  NodeRetryRequest,
  parse,
  RetryRequest,
  PauseRequest,
  PlanRequest,
  RegressRequest,
  ResumeRequest,
  RevoteRequest,
  RolloutId,
  RolloutPolicy,
  ShowRolloutQuery,
  type AuditList,
  type RolloutWindows,
  type PlanResult,
  type RolloutList,
  type RolloutSummary,
} from '@changeover/contracts';
import type { EventLog, RolloutRunner } from '../workflow/rollout.runner.js';
import type { RegistryPort } from '../nats/registry-client.js';
import type { Planner } from '../planning/planner.js';
import { resolveTargets } from '../creation/resolve-targets.js';
import { fold } from './rollout.state.js';
import { rolloutStreamId, type RolloutEvent } from './rollout.events.js';
import { showSummary, summarize } from './rollout.view.js';
import { currentTraceIds, traceIdOf } from '@changeover/telemetry';
import type { RolloutCommand } from './rollout.decider.js';

/** Who asked (event metadata: the audit trail). */
export interface Actor {
  actor: string;
  actorTokenId: string;
  actorRole: string;
}

/**
 * What the REST API can ask: each request is validated with its contract schema, turned into a
 * command, and applied with an expected-version append on whatever instance answers.
 */
export class RolloutCommands {
  constructor(
    private readonly deps: {
      runner: RolloutRunner;
      store: EventLog;
      registry: RegistryPort;
      planner: Planner;
      acquire(rolloutId: string): Promise<void>;
      list(query: ListRolloutsQuery): Promise<{ rollouts: RolloutSummary[]; nextCursor: string | null }>;
      audit(query: AuditQuery): Promise<AuditList>;
      /** The projection row of a rollout, with the stream version it was written at. */
      row(rolloutId: string): Promise<{ summary: RolloutSummary; version: number } | undefined>;
      clock: () => Date;
      /** The maintenance windows of these classes (those that have some). */
      windows?: (classIds: string[]) => Promise<RolloutWindows>;
    },
  ) {}

  async create(body: unknown, actor: Actor): Promise<RolloutSummary> {
    const req = parse(CreateRolloutRequest, body, 'create rollout request');
    return this.createFrom(req, actor);
  }

  /** Claim 20: the update arrives as an image; the registry stores it and says what to install where. */
  async createFromImage(image: Uint8Array | AsyncIterable<Uint8Array>, query: { policy?: string; rolloutId?: string }, actor: Actor): Promise<RolloutSummary> {
    if (image instanceof Uint8Array && image.length === 0) throw new ChangeoverError('VALIDATION_FAILED', 'the request body must be an update image (.tar.gz)');
    let policy: unknown = {};
    if (query.policy) {
      try {
        policy = JSON.parse(query.policy);
      } catch {
        throw new ChangeoverError('VALIDATION_FAILED', 'policy: must be JSON');
      }
    }
    const parsedPolicy = parse(RolloutPolicy, policy, 'policy');
    const rolloutId = query.rolloutId === undefined ? undefined : parse(RolloutId, query.rolloutId, 'rolloutId');
    const imported = await this.deps.registry.importImage(image);
    return this.createFrom({ update: imported.update, policy: parsedPolicy, ...(rolloutId ? { rolloutId } : {}) }, actor);
  }

  private async createFrom(req: CreateRolloutRequest, actor: Actor): Promise<RolloutSummary> {
    const rolloutId = req.rolloutId ?? `r-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    const { assignments, unsupported } = await resolveTargets(this.deps.registry, req.update);
    const classes = assignments.flatMap((a) => (a.classId ? [a.classId] : []));
    const windows = this.deps.windows ? await this.deps.windows(classes) : [];
    const schedule = { ...(req.startAt ? { startAt: new Date(req.startAt).toISOString() } : {}), ...(windows.length ? { windows } : {}) };
    const applied = await this.deps.runner.apply(rolloutId, { type: 'Create', now: this.deps.clock(), rolloutId, update: req.update, policy: req.policy, assignments, unsupported, createdBy: actor.actor, ...schedule }, actor);
    await this.deps.acquire(rolloutId);
    if (applied.state.status === 'initial') throw new ChangeoverError('INTERNAL', 'rollout was not created');
    return this.withTraceId(summarize(applied.state, applied.version));
  }

  force(id: string, body: unknown, actor: Actor) {
    const r = parse(ForceRequest, body, 'force request');
    return this.command(id, { type: 'Force', now: this.deps.clock(), by: actor.actor, reason: r.reason, ...(r.nodes ? { nodes: r.nodes } : {}) }, actor);
  }

  cancel(id: string, body: unknown, actor: Actor) {
    const r = parse(CancelRequest, body ?? {}, 'cancel request');
    return this.command(id, { type: 'Cancel', now: this.deps.clock(), by: actor.actor, reason: r.reason }, actor);
  }

  revote(id: string, body: unknown, actor: Actor) {
    const r = parse(RevoteRequest, body ?? {}, 'revote request');
    return this.command(id, { type: 'Revote', now: this.deps.clock(), by: actor.actor, reason: r.reason }, actor);
  }

  resume(id: string, body: unknown, actor: Actor) {
    const r = parse(ResumeRequest, body ?? {}, 'resume request');
    return this.command(id, { type: 'Resume', now: this.deps.clock(), by: actor.actor, ...(r.reason ? { reason: r.reason } : {}) }, actor);
  }

  pause(id: string, body: unknown, actor: Actor) {
    const r = parse(PauseRequest, body ?? {}, 'pause request');
    return this.command(id, { type: 'Pause', now: this.deps.clock(), by: actor.actor, reason: r.reason }, actor);
  }

  /** Commits failed or timed-out nodes again: those named, or all of them. */
  retry(id: string, body: unknown, actor: Actor) {
    const r = parse(RetryRequest, body ?? {}, 'retry request');
    return this.command(id, { type: 'Retry', now: this.deps.clock(), by: actor.actor, reason: r.reason, ...(r.nodeIds ? { nodeIds: r.nodeIds } : {}) }, actor);
  }

  retryNode(id: string, nodeId: string, body: unknown, actor: Actor) {
    const node = parse(NodeId, nodeId, 'node id');
    const r = parse(NodeRetryRequest, body ?? {}, 'retry request');
    return this.command(id, { type: 'Retry', now: this.deps.clock(), by: actor.actor, reason: r.reason, nodeIds: [node] }, actor);
  }

  regress(id: string, body: unknown, actor: Actor) {
    const r = parse(RegressRequest, body ?? {}, 'regress request');
    return this.command(id, { type: 'Regress', now: this.deps.clock(), by: actor.actor, ...(r.nodes ? { nodes: r.nodes } : {}), to: r.to, reason: r.reason }, actor);
  }

  plan(body: unknown): Promise<PlanResult> {
    return this.deps.planner.plan(parse(PlanRequest, body, 'plan request'));
  }

  /**
   * The rollout as it is now: the owner's live state, else the projection row or the stream, so any
   * instance answers with the truth. With `after` and `waitMs` (the REST query, validated) the
   * owner holds the request until the version passes `after`; another instance answers at once.
   */
  async show(id: string, query: Record<string, unknown> = {}): Promise<RolloutSummary> {
    const rolloutId = parse(RolloutId, id, 'rollout id');
    const q = parse(ShowRolloutQuery, query, 'rollout query');
    const opts = { nodes: q.nodes };
    if (q.after !== undefined && q.waitMs !== undefined) {
      // The state the change left: the last one of a rollout that just finished, which the owner lets go of at once.
      const changed = await this.deps.runner.changed(rolloutId, q.after, q.waitMs);
      if (changed && changed.state.status !== 'initial') return this.withTraceId(showSummary(changed.state, changed.version, opts));
    }
    // Owned here: the live state answers (a `watch` of a 100k-node rollout must not re-read its stream every second).
    const owned = this.deps.runner.stateOf(rolloutId);
    if (owned && owned.state.status !== 'initial') return this.withTraceId(showSummary(owned.state, owned.version, opts));
    // Not owned here (finished, or another instance's): the projection row answers when no event
    // came after it was written. Folding a finished 100,000-node rollout's stream takes a second.
    if (!opts.nodes) {
      const row = await this.deps.row(rolloutId);
      if (row && (await this.deps.store.readStream(rolloutStreamId(rolloutId), { after: row.version, limit: 1 })).length === 0) return this.withTraceId(row.summary);
    }
    const stored = await this.deps.store.readStream(rolloutStreamId(rolloutId));
    const state = fold(stored.map((e) => ({ type: e.type, data: e.data }) as RolloutEvent));
    if (state.status === 'initial') throw new ChangeoverError('NOT_FOUND', `no rollout ${rolloutId}`);
    const traceId = traceIdOf(stored[0]?.metadata?.traceparent);
    const summary = showSummary(state, stored.at(-1)!.streamPosition, opts);
    return traceId ? { ...summary, traceId } : summary;
  }

  /** The history: filtered, newest first, a page at a time (the REST query, validated). */
  async list(query: Record<string, unknown> = {}): Promise<RolloutList> {
    const q = parse(ListRolloutsQuery, query, 'rollout query');
    const page = await this.deps.list(q);
    return {
      rollouts: page.rollouts.map((s) => ({ rolloutId: s.rolloutId, status: s.status, description: s.description, createdBy: s.createdBy, nodes: s.nodes, phases: s.phases, createdAt: s.createdAt, updatedAt: s.updatedAt })),
      nextCursor: page.nextCursor,
    };
  }

  /** Operator actions: who did what to which rollout (or the cluster version), when and why. */
  audit(query: Record<string, unknown> = {}): Promise<AuditList> {
    return this.deps.audit(parse(AuditQuery, query, 'audit query'));
  }

  private async command(id: string, command: RolloutCommand, actor: Actor): Promise<RolloutSummary> {
    const rolloutId = parse(RolloutId, id, 'rollout id');
    const applied = await this.deps.runner.apply(rolloutId, command, actor);
    if (applied.state.status === 'initial') throw new ChangeoverError('NOT_FOUND', `no rollout ${rolloutId}`);
    return this.withTraceId(summarize(applied.state, applied.version));
  }

  /** Adds the rollout's trace id (stored with its first event), the one to search for in Jaeger. */
  private async withTraceId(summary: RolloutSummary): Promise<RolloutSummary> {
    const traceId = currentTraceIds(await this.deps.runner.traceOf(summary.rolloutId))?.traceId;
    return traceId ? { ...summary, traceId } : summary;
  }
}

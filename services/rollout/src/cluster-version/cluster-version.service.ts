import { randomBytes } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import { AdjustClusterVersionRequest, ChangeoverError, GroupAppendReply, GroupAppendRequest, isChangeoverError, parse, parseSubject, subjects, ValidatedReport, type AdjustClusterVersionReply, type ClusterVersionStatus, type GroupView } from '@changeover/contracts';
import { serveRpc, subscribeValidated, type RpcServer, type ValidatedSubscription } from '@changeover/messaging';
import { metrics, type Logger } from '@changeover/telemetry';
import type { EventLog } from '../workflow/rollout.runner.js';
import { ackKey, CLUSTER_STREAM, decide, fold, type Blocker, type ClusterCommand, type ClusterEvent, type ClusterState } from './cluster-version.decider.js';
import { blockersFor, highestCommonVersion, listNodes, validateRound, type NodeInfo } from './gates.js';
import type { GroupLogs } from './group-logs.js';

/** Named instants of an adjustment where a test can stop the service dead (SIGKILL). */
export const CLUSTER_FAULT_POINTS = ['after-target-recorded', 'after-first-group-adjusted'] as const;
export type ClusterFaultPoint = (typeof CLUSTER_FAULT_POINTS)[number];

/** Only one instance drives an adjustment: a session advisory lock, released by Postgres when its holder dies. */
const DRIVER_LOCK = 7_406_006;
const ORDER: Blocker['code'][] = ['NODE_NOT_ACTIVE', 'GROUP_PARTITIONED', 'NODE_INCAPABLE'];

const refusals = metrics.counter({ name: 'changeover_cluster_version_refusals_total', help: 'Cluster version adjustments refused, by blocking reason', labelNames: ['code'] as const });
const mediated = metrics.counter({ name: 'changeover_group_mediated_appends_total', help: 'Group log appends made for confined nodes, by outcome', labelNames: ['outcome'] as const });
const adjustments = metrics.counter({ name: 'changeover_cluster_version_adjustments_total', help: 'Cluster version adjustments, by outcome', labelNames: ['outcome'] as const });
const ackFailures = metrics.counter({ name: 'changeover_cluster_version_ack_failures_total', help: "Members' acknowledgements of an adjustment not recorded on arrival (taken again by the next validate round), by error code", labelNames: ['code'] as const });
const unlockFailures = metrics.counter({ name: 'changeover_cluster_version_unlock_failures_total', help: 'Driver locks not released by query (their connection is discarded instead, which releases them)' });

export interface ClusterVersionDeps {
  store: EventLog;
  pool: pg.Pool;
  nc: NatsConnection;
  logs: GroupLogs;
  registryTimeoutMs: number;
  validateTimeoutMs: number;
  clock: () => Date;
  log: Logger;
  faultAt?: ClusterFaultPoint;
}

/**
 * Adjust-version (DESIGN §6, second document): checks that every node is active and capable and no group
 * is partitioned, records the target, checks again, appends one ADJUST_VERSION to every group's log,
 * gathers every member's acknowledgement and emits cluster-version.adjusted. Event-sourced on stream
 * `cluster`, so a restarted service finishes an adjustment it was killed in.
 */
export class ClusterVersionService {
  private driving: string | null = null;
  private timer?: NodeJS.Timeout;
  private intake?: ValidatedSubscription;
  private appends?: RpcServer;
  private closed = false;
  private wake?: () => void;

  constructor(private readonly deps: ClusterVersionDeps) {}

  /** Resumes an adjustment left unfinished (by a crash or another instance's), and listens for members' acknowledgements. */
  start(): void {
    this.appends = serveRpc(this.deps.nc, subjects.agentRequestAny('group-append'), GroupAppendRequest, (req, ctx) => this.groupAppend(req, ctx.subject), { queue: 'rollout', resultSchema: GroupAppendReply, logger: this.deps.log });
    this.intake = subscribeValidated(this.deps.nc, subjects.agentAny('validated'), ValidatedReport, (r) => this.onAck(r), { logger: this.deps.log });
    const tick = () => void this.resume().catch((e: unknown) => this.deps.log.warn({ err: e }, 'cluster version resume failed'));
    tick();
    this.timer = setInterval(tick, 2000);
    this.timer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.wake?.();
    await this.intake?.stop();
    await this.appends?.stop();
  }

  /**
   * A confined node's JOIN or LEAVE, appended for it at the expected sequence (mediated appends):
   * it may speak only for itself, and write ADJUST_VERSION only as a new group's first entry at the
   * cluster's active version.
   */
  private async groupAppend(req: GroupAppendRequest, subject: string): Promise<GroupAppendReply> {
    const from = parseSubject(subject);
    const nodeId = from.kind === 'agent-request' ? from.nodeId : '';
    const m = req.message;
    try {
      if (m.reason === 'ADJUST_VERSION') {
        const { state } = await this.read();
        if (m.adjustmentId !== 'initial' || req.expectedLastSequence !== 0 || m.version !== state.activeVersion) {
          throw new ChangeoverError('FORBIDDEN', `node ${nodeId} may write ADJUST_VERSION only as the first entry of a new group, at the cluster version ${state.activeVersion}`, { nodeId, groupId: m.groupId });
        }
      } else if (m.nodeId !== nodeId) {
        throw new ChangeoverError('FORBIDDEN', `node ${nodeId} may not append a ${m.reason} for node ${m.nodeId}`, { nodeId, groupId: m.groupId });
      }
      const sequence = await this.deps.logs.appendAt(m, req.expectedLastSequence);
      mediated.inc({ outcome: 'appended' });
      return { groupId: m.groupId, sequence };
    } catch (e) {
      mediated.inc({ outcome: isChangeoverError(e) ? e.code : 'INTERNAL' });
      throw e;
    }
  }

  async read(): Promise<{ state: ClusterState; version: number }> {
    const stored = await this.deps.store.readStream(CLUSTER_STREAM);
    return { state: fold(stored.map((e) => ({ type: e.type, data: e.data }) as ClusterEvent)), version: stored.at(-1)?.streamPosition ?? 0 };
  }

  /** Decide and append with the expected version; after a conflict re-read and decide again. */
  private async apply(command: ClusterCommand, actor: string): Promise<ClusterEvent[]> {
    for (let attempt = 0; ; attempt++) {
      const { state, version } = await this.read();
      const events = decide(command, state);
      if (events instanceof ChangeoverError) throw events;
      if (!events.length) return events;
      try {
        await this.deps.store.append(CLUSTER_STREAM, version === 0 ? 'no-stream' : version, events.map((e) => ({ type: e.type, data: e.data, metadata: { actor } })));
        return events;
      } catch (e) {
        if (isChangeoverError(e, 'VERSION_CONFLICT') && attempt < 5) continue;
        throw e;
      }
    }
  }

  private async check(version: number, nodes?: NodeInfo[], groups?: GroupView[]): Promise<{ blockers: Blocker[]; nodes: NodeInfo[]; groups: GroupView[] }> {
    nodes ??= await listNodes(this.deps.nc, this.deps.registryTimeoutMs);
    groups ??= await this.deps.logs.readAll();
    for (let round = 1; ; round++) {
      const reports = await validateRound(this.deps.nc, groups, `check-${randomBytes(4).toString('hex')}`, this.deps.validateTimeoutMs, this.deps.log);
      const blockers = blockersFor(version, nodes, groups, reports, this.deps.validateTimeoutMs).sort((a, b) => ORDER.indexOf(a.code) - ORDER.indexOf(b.code));
      if (round >= 3 || !blockers.some((b) => b.code === 'GROUP_PARTITIONED')) return { blockers, nodes, groups };
      // A member joining or leaving during the round makes views differ without any partition: ask again.
      const after = await this.deps.logs.readAll();
      const moved = after.length !== groups.length || after.some((g, i) => g.lastSequence !== groups![i]!.lastSequence);
      if (!moved) return { blockers, nodes, groups };
      groups = after;
    }
  }

  /** POST /cluster-version/adjust: refused with a typed error naming every blocker, checked only on a dry run, else started. */
  async adjust(body: unknown, actor: string): Promise<AdjustClusterVersionReply> {
    const req = parse(AdjustClusterVersionRequest, body ?? {}, 'adjust cluster version request');
    const now = this.deps.clock();
    const { state } = await this.read();
    // The same preconditions the decider applies (in progress, same or lower version), before any check runs.
    const pre = decide({ type: 'Request', adjustmentId: 'check', version: req.version, by: actor, groups: [], now }, state);
    if (pre instanceof ChangeoverError) throw pre;
    const { blockers, groups } = await this.check(req.version);
    if (req.dryRun) return { version: req.version, dryRun: true, accepted: blockers.length === 0, adjustmentId: null, groups: groups.length, blockers };
    if (blockers.length) {
      await this.apply({ type: 'Refuse', version: req.version, by: actor, blockers, ...(req.reason ? { reason: req.reason } : {}), now: this.deps.clock() }, actor);
      for (const b of blockers) refusals.inc({ code: b.code });
      adjustments.inc({ outcome: 'refused' });
      throw refusal(req.version, blockers);
    }
    const adjustmentId = `adj-${req.version}-${now.getTime().toString(36)}-${randomBytes(3).toString('hex')}`;
    await this.apply({ type: 'Request', adjustmentId, version: req.version, by: actor, groups: groups.map((g) => g.groupId), ...(req.reason ? { reason: req.reason } : {}), now: this.deps.clock() }, actor);
    // From here on an agent that cannot run the target refuses joins.
    await this.deps.logs.writeRecord({ activeVersion: state.activeVersion, target: { version: req.version, adjustmentId }, at: this.deps.clock().toISOString() });
    this.deps.log.info({ adjustmentId, version: req.version, by: actor, groups: groups.length }, 'cluster version adjustment recorded');
    this.fault('after-target-recorded');
    void this.drive(adjustmentId).catch((e: unknown) => this.deps.log.error({ err: e, adjustmentId }, 'cluster version adjustment stalled; it resumes on the next tick'));
    return { version: req.version, dryRun: false, accepted: true, adjustmentId, groups: groups.length, blockers: [] };
  }

  private fault(point: ClusterFaultPoint): void {
    if (this.deps.faultAt === point) process.kill(process.pid, 'SIGKILL');
  }

  private async resume(): Promise<void> {
    if (this.closed || this.driving) return;
    const { state } = await this.read();
    if (state.status === 'adjusting') await this.drive(state.adjustment.adjustmentId);
  }

  /** Carries an adjustment to its end; only the instance holding the driver lock does. */
  private async drive(adjustmentId: string): Promise<void> {
    if (this.driving || this.closed) return;
    this.driving = adjustmentId;
    const client = await this.deps.pool.connect();
    // A session lock that could not be unlocked must not go back to the pool still held: the
    // connection is discarded instead, and Postgres releases the lock with the session.
    let discard: Error | undefined;
    try {
      const locked = (await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [DRIVER_LOCK])).rows[0]?.ok;
      if (!locked) return;
      try {
        await this.carry(adjustmentId);
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [DRIVER_LOCK]).catch((e: unknown) => {
          discard = e instanceof Error ? e : new Error(String(e));
          unlockFailures.inc();
          this.deps.log.warn({ err: e, adjustmentId }, 'driver lock not unlocked; its connection is discarded');
        });
      }
    } finally {
      client.release(discard);
      this.driving = null;
    }
  }

  private async carry(adjustmentId: string): Promise<void> {
    const { logs, log } = this.deps;
    let { state } = await this.read();
    if (state.status !== 'adjusting' || state.adjustment.adjustmentId !== adjustmentId) return;
    const target = state.adjustment.version;
    await logs.writeRecord({ activeVersion: state.activeVersion, target: { version: target, adjustmentId }, at: this.deps.clock().toISOString() });
    let groups = await logs.readAll();
    // Checked again after recording the target (a node may have joined or gone meanwhile), unless messages already went out.
    if (!groups.some((g) => g.lastAdjustmentId === adjustmentId)) {
      const { blockers } = await this.check(target, undefined, groups);
      if (blockers.length) {
        await this.apply({ type: 'Abandon', adjustmentId, blockers, now: this.deps.clock() }, 'system');
        await logs.writeRecord({ activeVersion: state.activeVersion, target: null, at: this.deps.clock().toISOString() });
        for (const b of blockers) refusals.inc({ code: b.code });
        adjustments.inc({ outcome: 'refused' });
        log.warn({ adjustmentId, blockers }, 'cluster version adjustment refused on the re-check');
        return;
      }
    }
    let first = true;
    while (!this.closed) {
      // Every group, including one created during the adjustment, gets the one ADJUST_VERSION message (claims 3, 6, 7).
      for (const g of groups) {
        if (g.activeVersion >= target) continue;
        await logs.adjust(g.groupId, target, adjustmentId, this.deps.clock);
        if (first) {
          first = false;
          this.fault('after-first-group-adjusted');
        }
      }
      groups = await logs.readAll();
      const reports = await validateRound(this.deps.nc, groups, `adjust-${adjustmentId}`, this.deps.validateTimeoutMs, this.deps.log);
      const acked: { groupId: string; memberId: string }[] = [];
      for (const r of reports.values()) for (const e of r?.groups ?? []) if (e.activeVersion >= target) acked.push({ groupId: e.groupId, memberId: e.memberId });
      if (acked.length) await this.apply({ type: 'Acknowledge', adjustmentId, members: acked, now: this.deps.clock() }, 'system');
      ({ state } = await this.read());
      if (state.status !== 'adjusting' || state.adjustment.adjustmentId !== adjustmentId) return;
      const done = state.adjustment.acked;
      const members = groups.flatMap((g) => g.members.map((m) => ackKey(g.groupId, m.memberId)));
      if (groups.every((g) => g.activeVersion >= target) && members.every((k) => done.has(k))) {
        await this.apply({ type: 'Complete', adjustmentId, groups: groups.length, now: this.deps.clock() }, 'system');
        await logs.writeRecord({ activeVersion: target, target: null, at: this.deps.clock().toISOString() });
        adjustments.inc({ outcome: 'adjusted' });
        log.info({ adjustmentId, version: target, groups: groups.length, members: members.length }, 'cluster version adjusted');
        return;
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 500);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  /**
   * A member switched (an unsolicited validated report keyed by the adjustment): recorded at once. An
   * acknowledgement that cannot be recorded now (the event store down, a conflict outlasting the
   * retries, the adjustment ended meanwhile) is logged and counted; it is not lost, because the
   * driver's next validate round, which the wake-up brings forward, asks every member again.
   */
  async onAck(r: ValidatedReport): Promise<void> {
    if (!r.requestId.startsWith('adj')) return;
    let adjustmentId: string | undefined;
    let members: { groupId: string; memberId: string }[] = [];
    try {
      const { state } = await this.read();
      if (state.status !== 'adjusting' || r.requestId !== `adjust-${state.adjustment.adjustmentId}`.slice(0, 128)) return;
      adjustmentId = state.adjustment.adjustmentId;
      const version = state.adjustment.version;
      members = r.groups.filter((e) => e.activeVersion >= version).map((e) => ({ groupId: e.groupId, memberId: e.memberId }));
      if (members.length) await this.apply({ type: 'Acknowledge', adjustmentId, members, now: this.deps.clock() }, `node:${r.nodeId}`);
    } catch (e) {
      const code = isChangeoverError(e) ? e.code : 'INTERNAL';
      ackFailures.inc({ code });
      this.deps.log.warn({ err: e, code, nodeId: r.nodeId, requestId: r.requestId, adjustmentId, members: members.length }, 'acknowledgement not recorded; the next validate round takes it again');
    } finally {
      this.wake?.();
    }
  }

  /** GET /cluster-version: nodes, groups, readiness for `version` (default: the highest every node can run) and progress. */
  async status(versionParam?: string): Promise<ClusterVersionStatus> {
    const { state } = await this.read();
    const [nodes, groups] = await Promise.all([listNodes(this.deps.nc, this.deps.registryTimeoutMs), this.deps.logs.readAll()]);
    let candidate: number | null = null;
    if (versionParam !== undefined && versionParam !== '') {
      candidate = Number(versionParam);
      if (!Number.isInteger(candidate) || candidate < 1) throw new ChangeoverError('VALIDATION_FAILED', 'version: must be a positive integer');
    } else {
      const common = highestCommonVersion(nodes);
      candidate = common !== null && common > state.activeVersion ? common : null;
    }
    // While an adjustment runs the question is its progress, not readiness for another one.
    const blockers = state.status === 'idle' && candidate !== null && candidate > state.activeVersion ? (await this.check(candidate, nodes, groups)).blockers : [];
    const members = groups.flatMap((g) => g.members.map((m) => ackKey(g.groupId, m.memberId)));
    let adjustment: ClusterVersionStatus['adjustment'] = null;
    if (state.status === 'adjusting') {
      const a = state.adjustment;
      adjustment = { adjustmentId: a.adjustmentId, version: a.version, state: 'adjusting', by: a.by, startedAt: a.startedAt, finishedAt: null, acknowledged: members.filter((k) => a.acked.has(k)).length, total: members.length };
    } else if (state.last) {
      const l = state.last;
      adjustment = { adjustmentId: l.adjustmentId ?? '', version: l.version, state: l.outcome, by: l.by, startedAt: l.startedAt, finishedAt: l.finishedAt, acknowledged: l.acknowledged, total: l.acknowledged };
    }
    return {
      activeVersion: state.activeVersion,
      candidateVersion: candidate,
      ready: state.status === 'idle' && candidate !== null && candidate > state.activeVersion && blockers.length === 0,
      blockers,
      nodes: nodes.map((n) => ({ nodeId: n.nodeId, status: n.status, agentVersion: n.agentVersion, clusterVersions: n.clusterVersions })),
      groups: groups.map((g) => ({ groupId: g.groupId, activeVersion: g.activeVersion, lastSequence: g.lastSequence, members: g.members.map((m) => ({ memberId: m.memberId, nodeId: m.nodeId })) })),
      adjustment,
    };
  }
}

/** The typed refusal: the first blocker's code, every blocker in the message and in details. */
export function refusal(version: number, blockers: Blocker[]): ChangeoverError {
  const code = blockers[0]!.code;
  return new ChangeoverError(code, `cluster version ${version} refused: ${blockers.map((b) => `${b.code}: ${b.message}`).join('; ')}`.slice(0, 4000), { version, blockers });
}

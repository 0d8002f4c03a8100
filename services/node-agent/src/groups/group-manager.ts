import { applyMembership, ChangeoverError, emptyGroupView, isChangeoverError, type ClusterRecord, type GroupView, type MembershipMessage, type ValidateCommand, type ValidatedReport, type VersionRange } from '@changeover/contracts';
import type { GroupMemberView } from '@changeover/agent-sdk';
import type { Counters, Log, ReportSink } from '../core/ports.js';

/** What the manager needs of the group logs (JetStream in production: GroupLogStore). */
export interface GroupLogPort {
  lastSequence(groupId: string): Promise<number>;
  append(msg: MembershipMessage, expectedLast: number): Promise<number>;
  /** `onPoll` hears the outcome of each poll after the first: undefined, or the error that made it fail. */
  follow(groupId: string, onMessage: (seq: number, msg: MembershipMessage | null) => void, onPoll?: (error: unknown) => void): Promise<{ stop(): void; kick(): void }>;
  clusterRecord(): Promise<ClusterRecord | null>;
}

/** Group functions and the cluster infrastructure version they need (claim 2). */
export const GROUP_FEATURES = { 'leader-election': 2 } as const;

interface Followed {
  view: GroupView;
  /** The version this node's members run: the last ADJUST_VERSION this agent can run. */
  running: number;
  /** Members held here; `leaving` is set while a LEAVE is owed to the log (appended, or retried at the next validate). */
  local: Map<string, { processId: string; leaving?: string }>;
  waiters: Set<() => void>;
  stop(): void;
  /** Reads the log now instead of at the next poll. */
  kick(): void;
  queue: Promise<unknown>;
}

const MAX_APPEND_ATTEMPTS = 20;
const SYNC_TIMEOUT_MS = 5000;

/**
 * Group membership on one node (DESIGN §6): members join and leave through ordered messages in their
 * group's log, every member applies the log in order, the active version is the last ADJUST_VERSION,
 * and a join to a group whose version this agent cannot run is refused with VERSION_UNSUPPORTED.
 */
export class GroupManager {
  private readonly groups = new Map<string, Followed>();
  private readonly opening = new Map<string, Promise<Followed>>();
  private stopped = false;

  constructor(
    readonly nodeId: string,
    readonly range: VersionRange,
    private readonly logs: GroupLogPort,
    private readonly sink: ReportSink,
    private readonly counters: Counters,
    private readonly log: Log,
  ) {}

  private canRun(version: number): boolean {
    return version >= this.range.min && version <= this.range.max;
  }

  /** Joins `memberId` (a process on this node) to the group; resolves with its view once the JOIN is applied. */
  async join(groupId: string, memberId: string, processId: string): Promise<GroupMemberView> {
    if (this.stopped) throw new ChangeoverError('UNAVAILABLE', `the agent on node ${this.nodeId} is stopping; join again when it is back`);
    const f = await this.followed(groupId);
    try {
      await this.serial(f, async () => {
        // A group created after an adjustment starts at the cluster's version, not at 1.
        const record = await this.logs.clusterRecord();
        await this.appendWith(groupId, f, (view) => (view.lastSequence === 0 && record && record.activeVersion > view.activeVersion ? { reason: 'ADJUST_VERSION', groupId, version: record.activeVersion, adjustmentId: 'initial', at: new Date().toISOString() } : null));
        await this.appendWith(groupId, f, async (view) => {
          const present = view.members.find((m) => m.memberId === memberId);
          if (present && present.nodeId !== this.nodeId) throw new ChangeoverError('CONFLICT', `member ${memberId} of group ${groupId} is already a member on node ${present.nodeId}`, { groupId, memberId, nodeId: present.nodeId });
          if (!this.canRun(view.activeVersion)) {
            throw new ChangeoverError('VERSION_UNSUPPORTED', `group ${groupId} runs cluster version ${view.activeVersion}; this agent (node ${this.nodeId}) runs versions ${this.range.min}-${this.range.max}`, { groupId, activeVersion: view.activeVersion, range: this.range, nodeId: this.nodeId });
          }
          const target = (await this.logs.clusterRecord())?.target;
          if (target && target.version > view.activeVersion && !this.canRun(target.version)) {
            throw new ChangeoverError('VERSION_UNSUPPORTED', `the cluster is being adjusted to version ${target.version} (${target.adjustmentId}); this agent (node ${this.nodeId}) runs versions ${this.range.min}-${this.range.max}`, { groupId, target: target.version, range: this.range, nodeId: this.nodeId });
          }
          // Already in the log from before an agent restart that skipped its LEAVE: nothing to append.
          if (present) return null;
          return { reason: 'JOIN', groupId, memberId, nodeId: this.nodeId, at: new Date().toISOString() };
        });
        f.local.set(memberId, { processId });
        if (this.canRun(f.view.activeVersion)) f.running = f.view.activeVersion;
      });
      this.counters.inc('agent_group_joins_total', { outcome: 'joined' });
      this.log.info('member joined', { groupId, memberId, version: f.running });
      return this.memberView(f, memberId);
    } catch (e) {
      this.counters.inc('agent_group_joins_total', { outcome: isChangeoverError(e) ? e.code : 'INTERNAL' });
      throw e;
    }
  }

  /** Appends LEAVE for the member (claim 5: a member leaves before its node shuts down). */
  async leave(groupId: string, memberId: string, cause: string): Promise<GroupMemberView> {
    const f = this.groups.get(groupId);
    if (!f?.local.has(memberId)) throw new ChangeoverError('NOT_FOUND', `${memberId} is not a member of group ${groupId} on node ${this.nodeId}`, { groupId, memberId });
    // The member stays held (marked leaving) until its LEAVE is in the log: a failed append must not
    // leave a log member that no agent answers for (a ghost the cluster-version checks see as partitioned).
    f.local.get(memberId)!.leaving = cause;
    await this.serial(f, () => this.appendLeave(groupId, f, memberId, cause));
    this.counters.inc('agent_group_leaves_total');
    this.log.info('member left', { groupId, memberId, cause });
    return this.memberView(f, memberId);
  }

  /** The members this agent holds. */
  localMembers(): { groupId: string; memberId: string }[] {
    return [...this.groups].flatMap(([groupId, f]) => [...f.local.keys()].map((memberId) => ({ groupId, memberId })));
  }

  /** Every local member leaves (the agent is stopping for an upgrade). */
  async leaveAll(cause: string): Promise<void> {
    // From here on joins are refused: members come back when the agent has restarted.
    this.stopped = true;
    for (const [groupId, f] of this.groups) {
      for (const memberId of [...f.local.keys()]) await this.leave(groupId, memberId, cause).catch((e: unknown) => this.leaveFailed(groupId, memberId, cause, e));
    }
  }

  /** A process stopped: its memberships end. */
  processGone(processId: string): void {
    for (const [groupId, f] of this.groups) {
      for (const [memberId, m] of f.local) {
        if (m.processId !== processId) continue;
        const cause = `process ${processId} stopped`;
        void this.leave(groupId, memberId, cause).catch((e: unknown) => this.leaveFailed(groupId, memberId, cause, e));
      }
    }
  }

  /** A LEAVE that did not reach the log: counted and logged; the member stays held and the next validate appends it. */
  private leaveFailed(groupId: string, memberId: string, cause: string, e: unknown): void {
    const code = isChangeoverError(e) ? e.code : 'INTERNAL';
    this.counters.inc('agent_group_leave_failures_total', { code });
    this.log.warn('leave not appended; retried at the next validate', { groupId, memberId, cause, code, error: e instanceof Error ? e.message : String(e) });
  }

  /** Appends the member's LEAVE (if the log still lists it on this node) and lets go of it. */
  private async appendLeave(groupId: string, f: Followed, memberId: string, cause: string): Promise<void> {
    await this.appendWith(groupId, f, (view) => (view.members.some((m) => m.memberId === memberId && m.nodeId === this.nodeId) ? { reason: 'LEAVE', groupId, memberId, nodeId: this.nodeId, at: new Date().toISOString(), cause: cause.slice(0, 4000) } : null));
    f.local.delete(memberId);
  }

  /**
   * Before a validate answers: members the log lists on this node that no local process holds (their
   * LEAVE failed, or the agent restarted without one and the process did not join again) get their
   * LEAVE now. Left in the log, such a ghost is never answered for, and the cluster-version checks
   * would call its group partitioned although every live member agrees.
   */
  private async retireGhosts(groupId: string, f: Followed): Promise<void> {
    await this.serial(f, async () => {
      await this.sync(groupId, f);
      for (const m of f.view.members) {
        if (m.nodeId !== this.nodeId) continue;
        const held = f.local.get(m.memberId);
        if (held && held.leaving === undefined) continue;
        const cause = held?.leaving ?? 'no process on the node holds this member';
        try {
          await this.appendLeave(groupId, f, m.memberId, cause);
          this.counters.inc('agent_group_ghosts_retired_total', { kind: held ? 'leave-retried' : 'unheld' });
          this.log.info('member without a process left its group', { groupId, memberId: m.memberId, cause });
        } catch (e) {
          // Still held when its LEAVE was owed: the validate reports it, this agent answers for it.
          this.leaveFailed(groupId, m.memberId, cause, e);
        }
      }
    });
  }

  /** The member's view; with `after`, waits (up to `waitMs`) until the log moves past that sequence. */
  async view(groupId: string, memberId: string, after?: number, waitMs = 0): Promise<GroupMemberView> {
    const f = this.groups.get(groupId);
    if (!f?.local.has(memberId)) throw new ChangeoverError('NOT_FOUND', `${memberId} is not a member of group ${groupId} on node ${this.nodeId} (join first)`, { groupId, memberId });
    // Without `after` the view is brought up to the log's end first.
    if (after === undefined) await this.sync(groupId, f);
    if (after !== undefined && f.view.lastSequence <= after && waitMs > 0) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          f.waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, waitMs);
        f.waiters.add(done);
      });
    }
    return this.memberView(f, memberId);
  }

  /** Leader election, a version-2 function: the member that joined first leads; every member computes the same from the log. */
  async leader(groupId: string, memberId: string): Promise<{ groupId: string; leader: { memberId: string; nodeId: string } | null; sequence: number; version: number }> {
    const f = this.groups.get(groupId);
    if (!f?.local.has(memberId)) throw new ChangeoverError('NOT_FOUND', `${memberId} is not a member of group ${groupId} on node ${this.nodeId}`, { groupId, memberId });
    this.requireFeature(f, groupId, 'leader-election');
    await this.sync(groupId, f);
    const first = f.view.members[0];
    return { groupId, leader: first ? { memberId: first.memberId, nodeId: first.nodeId } : null, sequence: f.view.lastSequence, version: f.running };
  }

  private requireFeature(f: Followed, groupId: string, feature: keyof typeof GROUP_FEATURES): void {
    const needs = GROUP_FEATURES[feature];
    if (f.running < needs) {
      this.counters.inc('agent_group_feature_refused_total', { feature });
      throw new ChangeoverError('FEATURE_NOT_ACTIVE', `${feature} needs cluster version ${needs}; group ${groupId} runs version ${f.running} (adjust it with \`changeover cluster-version adjust ${needs}\`)`, { groupId, feature, needs, activeVersion: f.running });
    }
  }

  /** A validate round: every local member reports its view after catching up with the log. */
  async validate(cmd: ValidateCommand): Promise<ValidatedReport> {
    const wanted = cmd.groups ? new Set(cmd.groups) : null;
    const groups: ValidatedReport['groups'] = [];
    // A group asked about is followed even with no local member: the log may still list ghosts of this node.
    if (wanted && !this.stopped) {
      for (const groupId of wanted) {
        if (this.groups.has(groupId)) continue;
        await this.followed(groupId).catch((e: unknown) => {
          this.counters.inc('agent_group_follow_failures_total');
          this.log.warn('group not followed for a validate', { groupId, error: e instanceof Error ? e.message : String(e) });
        });
      }
    }
    for (const [groupId, f] of this.groups) {
      if (wanted && !wanted.has(groupId)) continue;
      await this.retireGhosts(groupId, f);
      if (f.local.size === 0) continue;
      await this.sync(groupId, f);
      for (const memberId of f.local.keys()) groups.push(this.entry(groupId, f, memberId));
    }
    this.counters.inc('agent_group_validations_total');
    return { nodeId: this.nodeId, requestId: cmd.requestId, groups: groups.slice(0, 1000) };
  }

  stop(): void {
    this.stopped = true;
    for (const f of this.groups.values()) {
      f.stop();
      for (const w of f.waiters) w();
    }
  }

  private entry(groupId: string, f: Followed, memberId: string): ValidatedReport['groups'][number] {
    return { groupId, memberId, lastSequence: f.view.lastSequence, activeVersion: f.running, members: f.view.members.map((m) => m.memberId) };
  }

  private memberView(f: Followed, memberId: string): GroupMemberView {
    return {
      groupId: f.view.groupId,
      memberId,
      nodeId: this.nodeId,
      joined: f.local.has(memberId) && f.view.members.some((m) => m.memberId === memberId && m.nodeId === this.nodeId),
      activeVersion: f.running,
      lastSequence: f.view.lastSequence,
      members: f.view.members.map((m) => ({ memberId: m.memberId, nodeId: m.nodeId })),
      features: Object.entries(GROUP_FEATURES).filter(([, v]) => f.running >= v).map(([k]) => k),
    };
  }

  /** Per-group serialisation of this agent's own appends. */
  private serial<T>(f: Followed, fn: () => Promise<T>): Promise<T> {
    const run = f.queue.then(fn, fn);
    f.queue = run.catch(() => undefined);
    return run;
  }

  private async followed(groupId: string): Promise<Followed> {
    const known = this.groups.get(groupId);
    if (known) return known;
    if (this.stopped) throw new ChangeoverError('UNAVAILABLE', 'the agent is stopping');
    let opening = this.opening.get(groupId);
    if (!opening) {
      opening = (async () => {
        const f: Followed = { view: emptyGroupView(groupId), running: 1, local: new Map(), waiters: new Set(), stop: () => undefined, kick: () => undefined, queue: Promise.resolve() };
        // Every failed poll is counted; the first of a run and the recovery are logged (a poll runs every 250 ms).
        let failing = 0;
        const onPoll = (e: unknown) => {
          if (e === undefined) {
            if (failing) this.log.info('group log readable again', { groupId, failedPolls: failing });
            failing = 0;
            return;
          }
          const code = isChangeoverError(e) ? e.code : 'INTERNAL';
          this.counters.inc('agent_group_poll_failures_total', { code });
          if (failing++ === 0) this.log.warn('group log poll failed; retrying every poll', { groupId, code, error: e instanceof Error ? e.message : String(e) });
        };
        const sub = await this.logs.follow(groupId, (seq, msg) => this.apply(groupId, f, seq, msg), onPoll);
        f.stop = () => sub.stop();
        f.kick = () => sub.kick();
        this.groups.set(groupId, f);
        await this.sync(groupId, f);
        return f;
      })().finally(() => this.opening.delete(groupId));
      this.opening.set(groupId, opening);
    }
    return opening;
  }

  private apply(groupId: string, f: Followed, seq: number, msg: MembershipMessage | null): void {
    if (seq <= f.view.lastSequence) return;
    if (!msg || msg.groupId !== groupId) {
      this.counters.inc('agent_group_messages_rejected_total');
      this.log.warn('malformed membership message skipped', { groupId, seq });
    }
    f.view = applyMembership(f.view, seq, msg && msg.groupId === groupId ? msg : null);
    if (msg?.reason === 'ADJUST_VERSION') {
      if (this.canRun(msg.version)) {
        f.running = msg.version;
        // Each local member switches and acknowledges (an unsolicited validated report keyed by the adjustment).
        if (f.local.size) {
          this.sink.publish(this.nodeId, 'validated', { nodeId: this.nodeId, requestId: `adjust-${msg.adjustmentId}`.slice(0, 128), groups: [...f.local.keys()].map((m) => this.entry(groupId, f, m)) } satisfies ValidatedReport);
          this.counters.inc('agent_group_adjustments_total', { outcome: 'switched' });
          this.log.info('group version adjusted', { groupId, version: msg.version, adjustmentId: msg.adjustmentId });
        }
      } else {
        this.counters.inc('agent_group_adjustments_total', { outcome: 'unsupported' });
        this.log.error('group adjusted to a version this agent cannot run', { groupId, version: msg.version, range: this.range });
      }
    }
    for (const w of [...f.waiters]) w();
  }

  /** Waits until this agent has applied the group's log up to its current end. */
  private async sync(groupId: string, f: Followed): Promise<void> {
    const last = await this.logs.lastSequence(groupId);
    await this.appliedUpTo(f, last);
  }

  private async appliedUpTo(f: Followed, seq: number): Promise<void> {
    const deadline = Date.now() + SYNC_TIMEOUT_MS;
    if (f.view.lastSequence < seq) f.kick();
    while (f.view.lastSequence < seq) {
      if (Date.now() > deadline) throw new ChangeoverError('TIMEOUT', `group ${f.view.groupId}: log not applied up to ${seq} within ${SYNC_TIMEOUT_MS} ms`);
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          f.waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, 50);
        f.waiters.add(done);
      });
    }
  }

  /** Decides the next message from the applied view and appends it at the expected sequence; re-decides after losing a race. */
  private async appendWith(groupId: string, f: Followed, build: (view: GroupView) => MembershipMessage | null | Promise<MembershipMessage | null>): Promise<void> {
    for (let attempt = 0; attempt < MAX_APPEND_ATTEMPTS; attempt++) {
      await this.sync(groupId, f);
      const msg = await build(f.view);
      if (!msg) return;
      try {
        const seq = await this.logs.append(msg, f.view.lastSequence);
        await this.appliedUpTo(f, seq);
        return;
      } catch (e) {
        if (isChangeoverError(e, 'VERSION_CONFLICT')) {
          this.counters.inc('agent_group_append_conflicts_total');
          continue;
        }
        throw e;
      }
    }
    throw new ChangeoverError('CONFLICT', `group ${groupId}: gave up after ${MAX_APPEND_ATTEMPTS} concurrent appends`);
  }
}

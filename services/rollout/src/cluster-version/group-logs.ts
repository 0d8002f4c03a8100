import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { ensureStream, isWrongLastSequence } from '@changeover/messaging';
import { applyMembership, ChangeoverError, CLUSTER_RECORD, decode, emptyGroupView, encode, MembershipMessage, parseSubject, STREAMS, subjects, type ClusterRecord, type GroupView } from '@changeover/contracts';


/** The orchestrator's side of the group logs (JetStream CHANGEOVER_GROUPS) and of the cluster record agents read on join. */
export class GroupLogs {
  private constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
  ) {}

  /** `replicas`: NATS_STREAM_REPLICAS of both streams (an existing stream is moved to it). */
  static async open(nc: NatsConnection, replicas = 1): Promise<GroupLogs> {
    const jsm = await jetstreamManager(nc);
    await ensureStream(jsm, { name: STREAMS.groups, subjects: [subjects.groupsAll], replicas });
    await ensureStream(jsm, { name: CLUSTER_RECORD.stream, subjects: [CLUSTER_RECORD.subject], maxMsgsPerSubject: 1, replicas });
    return new GroupLogs(jetstream(nc), jsm);
  }

  /** Every group's log folded, read in stream order up to the stream's current end (logs are small: membership changes only). */
  async readAll(): Promise<GroupView[]> {
    const info = await this.jsm.streams.info(STREAMS.groups);
    const views = new Map<string, GroupView>();
    for (let from = info.state.first_seq; from <= info.state.last_seq && info.state.messages > 0; from += 64) {
      const seqs = Array.from({ length: Math.min(64, info.state.last_seq - from + 1) }, (_, i) => from + i);
      const got = await Promise.all(seqs.map((seq) => this.jsm.streams.getMessage(STREAMS.groups, { seq })));
      for (const m of got) {
        if (!m) continue;
        let groupId: string;
        try {
          const parsed = parseSubject(m.subject);
          if (parsed.kind !== 'group') continue;
          groupId = parsed.groupId;
        } catch {
          continue;
        }
        let msg: MembershipMessage | null = null;
        try {
          msg = decode(MembershipMessage, m.data, 'membership message');
          if (msg.groupId !== groupId) msg = null;
        } catch {
          msg = null;
        }
        views.set(groupId, applyMembership(views.get(groupId) ?? emptyGroupView(groupId), m.seq, msg));
      }
    }
    return [...views.values()].sort((a, b) => a.groupId.localeCompare(b.groupId));
  }

  /**
   * Appends this adjustment's ADJUST_VERSION to the group's log unless it is already there; after losing
   * a race (a concurrent JOIN) it re-reads the group and tries again. Returns the group's view after it.
   */
  async adjust(groupId: string, version: number, adjustmentId: string, now: () => Date): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const view = await this.readOne(groupId);
      if (view.lastAdjustmentId === adjustmentId || view.activeVersion >= version) return;
      const msg: MembershipMessage = { reason: 'ADJUST_VERSION', groupId, version, adjustmentId, at: now().toISOString() };
      try {
        await this.js.publish(subjects.groupMembership(groupId), encode(msg), { expect: { lastSubjectSequence: view.lastSequence } });
        return;
      } catch (e) {
        if (isWrongLastSequence(e)) continue;
        throw e;
      }
    }
    throw new ChangeoverError('CONFLICT', `group ${groupId}: ADJUST_VERSION lost 20 races in a row`);
  }

  /** One group's log folded. */
  async readOne(groupId: string): Promise<GroupView> {
    return (await this.readAll()).find((g) => g.groupId === groupId) ?? emptyGroupView(groupId);
  }

  /** Appends if the group's log still ends at `expectedLast`, else VERSION_CONFLICT. */
  async appendAt(msg: MembershipMessage, expectedLast: number): Promise<number> {
    try {
      return (await this.js.publish(subjects.groupMembership(msg.groupId), encode(msg), { expect: { lastSubjectSequence: expectedLast } })).seq;
    } catch (e) {
      if (isWrongLastSequence(e)) throw new ChangeoverError('VERSION_CONFLICT', `group ${msg.groupId} log moved past sequence ${expectedLast}`, { groupId: msg.groupId });
      throw e;
    }
  }

  async writeRecord(record: ClusterRecord): Promise<void> {
    await this.js.publish(CLUSTER_RECORD.subject, encode(record));
  }
}

import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, JetStreamApiError, StorageType, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { ChangeoverError, CLUSTER_RECORD, ClusterRecord, decode, encode, MembershipMessage, STREAMS, subjects } from '@changeover/contracts';

const STREAM_NOT_FOUND = 10059;
const WRONG_LAST_SEQUENCE = 10071;

/** True when an append lost the race: another message reached the group's log first. */
export function isWrongLastSequence(e: unknown): boolean {
  return (e instanceof JetStreamApiError && e.code === WRONG_LAST_SEQUENCE) || /wrong last sequence/i.test(e instanceof Error ? e.message : String(e));
}

async function ensureStream(jsm: JetStreamManager, name: string, subjectsOf: string[], perSubject?: number): Promise<void> {
  try {
    await jsm.streams.info(name);
    return;
  } catch (e) {
    if (!(e instanceof JetStreamApiError) || e.code !== STREAM_NOT_FOUND) throw e;
  }
  try {
    await jsm.streams.add({ name, subjects: subjectsOf, storage: StorageType.File, ...(perSubject ? { max_msgs_per_subject: perSubject } : {}) });
  } catch (e) {
    // Another agent created it meanwhile.
    await jsm.streams.info(name).catch(() => {
      throw e;
    });
  }
}

/**
 * The group logs on JetStream CHANGEOVER_GROUPS (one subject per group) and the cluster record.
 * Appends carry the expected last sequence of the group's subject, so concurrent appends never interleave.
 */
export class GroupLogStore {
  private constructor(
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
  ) {}

  static async open(nc: NatsConnection): Promise<GroupLogStore> {
    const jsm = await jetstreamManager(nc);
    await ensureStream(jsm, STREAMS.groups, [subjects.groupsAll]);
    await ensureStream(jsm, CLUSTER_RECORD.stream, [CLUSTER_RECORD.subject], 1);
    return new GroupLogStore(jetstream(nc), jsm);
  }

  /** Sequence of the group's last message (0: the group has no log yet). */
  async lastSequence(groupId: string): Promise<number> {
    const m = await this.jsm.streams.getMessage(STREAMS.groups, { last_by_subj: subjects.groupMembership(groupId) });
    return m?.seq ?? 0;
  }

  /** Appends if the log still ends at `expectedLast`; throws VERSION_CONFLICT otherwise. */
  async append(msg: MembershipMessage, expectedLast: number): Promise<number> {
    try {
      const ack = await this.js.publish(subjects.groupMembership(msg.groupId), encode(msg), { expect: { lastSubjectSequence: expectedLast } });
      return ack.seq;
    } catch (e) {
      if (isWrongLastSequence(e)) throw new ChangeoverError('VERSION_CONFLICT', `group ${msg.groupId} log moved past sequence ${expectedLast}`);
      throw e;
    }
  }

  /** Follows one group's log from its first message, in order; `onMessage` gets null for an entry that fails the schema. */
  async follow(groupId: string, onMessage: (seq: number, msg: MembershipMessage | null) => void): Promise<{ stop(): void }> {
    const consumer = await this.js.consumers.get(STREAMS.groups, { filter_subjects: subjects.groupMembership(groupId) });
    const messages = await consumer.consume();
    void (async () => {
      for await (const m of messages) {
        let msg: MembershipMessage | null = null;
        try {
          msg = decode(MembershipMessage, m.data, 'membership message');
        } catch {
          msg = null;
        }
        onMessage(m.seq, msg);
      }
    })();
    return { stop: () => void messages.stop() };
  }

  /** The cluster record (active version and any adjustment target), or null before the first adjustment. */
  async clusterRecord(): Promise<ClusterRecord | null> {
    const m = await this.jsm.streams.getMessage(CLUSTER_RECORD.stream, { last_by_subj: CLUSTER_RECORD.subject });
    if (!m) return null;
    try {
      return decode(ClusterRecord, m.data, 'cluster record');
    } catch {
      return null;
    }
  }
}

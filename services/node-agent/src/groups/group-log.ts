import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { ChangeoverError, CLUSTER_RECORD, ClusterRecord, decode, encode, GroupAppendReply, MembershipMessage, STREAMS, subjects } from '@changeover/contracts';
import { ensureStream, isStreamNotFound, isWrongLastSequence, requestRpc } from '@changeover/messaging';


/**
 * The group logs on JetStream CHANGEOVER_GROUPS (one subject per group) and the cluster record.
 * Appends carry the expected last sequence of the group's subject, so concurrent appends never interleave.
 */
export class GroupLogStore {
  private constructor(
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    private readonly nc: NatsConnection,
    private readonly mediated?: { nodeId: string; timeoutMs: number },
  ) {}

  /**
   * `mediated`: the node may only read the logs (confined NATS credentials), so its appends go to the
   * rollout service on changeover.agent.<node>.group-append; the streams are created by the service.
   */
  static async open(nc: NatsConnection, opts: { mediated?: { nodeId: string; timeoutMs: number }; replicas?: number } = {}): Promise<GroupLogStore> {
    const jsm = await jetstreamManager(nc);
    if (!opts.mediated) {
      const replicas = opts.replicas ?? 1;
      await ensureStream(jsm, { name: STREAMS.groups, subjects: [subjects.groupsAll], replicas });
      await ensureStream(jsm, { name: CLUSTER_RECORD.stream, subjects: [CLUSTER_RECORD.subject], maxMsgsPerSubject: 1, replicas });
    }
    return new GroupLogStore(jetstream(nc), jsm, nc, opts.mediated);
  }

  /** Sequence of the group's last message (0: the group has no log yet). */
  async lastSequence(groupId: string): Promise<number> {
    try {
      const m = await this.jsm.streams.getMessage(STREAMS.groups, { last_by_subj: subjects.groupMembership(groupId) });
      return m?.seq ?? 0;
    } catch (e) {
      if (isStreamNotFound(e)) throw new ChangeoverError('UNAVAILABLE', `stream ${STREAMS.groups} does not exist yet (the rollout service creates it)`);
      throw e;
    }
  }

  /** Appends if the log still ends at `expectedLast`; throws VERSION_CONFLICT otherwise. */
  async append(msg: MembershipMessage, expectedLast: number): Promise<number> {
    if (this.mediated) {
      const reply = await requestRpc(this.nc, subjects.agentRequest(this.mediated.nodeId, 'group-append'), { message: msg, expectedLastSequence: expectedLast }, GroupAppendReply, { timeoutMs: this.mediated.timeoutMs });
      return reply.sequence;
    }
    try {
      const ack = await this.js.publish(subjects.groupMembership(msg.groupId), encode(msg), { expect: { lastSubjectSequence: expectedLast } });
      return ack.seq;
    } catch (e) {
      if (isWrongLastSequence(e)) throw new ChangeoverError('VERSION_CONFLICT', `group ${msg.groupId} log moved past sequence ${expectedLast}`);
      throw e;
    }
  }

  /**
   * Follows one group's log from its first message, in order, by message-get only (`next_by_subj`):
   * a node confined to reading the group logs needs no right to create consumers. Polls every
   * `pollMs`, and at once when kicked (after an append, before answering a validate round).
   * `onMessage` gets null for an entry that fails the schema; `onPoll` hears whether each later poll
   * read the log (it failed: NATS away for a moment, the next poll tries again).
   */
  async follow(groupId: string, onMessage: (seq: number, msg: MembershipMessage | null) => void, onPoll?: (error: unknown) => void, pollMs = 250): Promise<{ stop(): void; kick(): void }> {
    const subject = subjects.groupMembership(groupId);
    let next = 1;
    let stopped = false;
    let wake: (() => void) | undefined;
    const pump = async () => {
      for (;;) {
        const m = await this.jsm.streams.getMessage(STREAMS.groups, { seq: next, next_by_subj: subject } as unknown as { seq: number });
        if (!m || stopped) return;
        next = m.seq + 1;
        let msg: MembershipMessage | null = null;
        try {
          msg = decode(MembershipMessage, m.data, 'membership message');
        } catch {
          msg = null;
        }
        onMessage(m.seq, msg);
      }
    };
    await pump();
    void (async () => {
      while (!stopped) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, pollMs);
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        // NATS down for a moment: the next poll tries again; the follower hears of it either way.
        const error = await pump().then(
          () => undefined,
          (e: unknown) => e ?? new Error('poll failed'),
        );
        onPoll?.(error);
      }
    })();
    return {
      stop: () => {
        stopped = true;
        wake?.();
      },
      kick: () => wake?.(),
    };
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

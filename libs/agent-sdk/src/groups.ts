import { ChangeoverError, ErrorBody } from '@changeover/contracts';
import { call, processCredential } from './client.js';
import { AGENT_ENV, GROUP_PATHS, GroupMemberView, LeaderReply, type ProcessCredential } from './local-api.js';

export interface GroupOptions {
  /** Default: env CHANGEOVER_AGENT_SOCKET. */
  socketPath?: string;
  /** Default: env CHANGEOVER_PROCESS_ID. */
  processId?: string;
  /** Default: env CHANGEOVER_PROCESS_TOKEN (the credential the agent gave this process). */
  token?: string;
  /** The member's id in the group (unique in the group); default: the process id. */
  memberId?: string;
  /** Called with every new view (membership change, version adjustment, agent gone: `joined: false`). */
  onChange?: (view: GroupMemberView) => void;
  pollWaitMs?: number;
}

function typed(status: number, json: unknown, what: string): ChangeoverError {
  const body = ErrorBody.safeParse(json);
  return body.success ? ChangeoverError.fromBody(body.data) : new ChangeoverError('INTERNAL', `${what}: agent answered ${status}`);
}

/**
 * Membership of one group through the node agent (DESIGN §6). The agent appends JOIN/LEAVE to the
 * group's ordered log; this handle follows the member's view and joins again by itself when the
 * agent comes back after a restart (an upgrade), as claim 5 asks.
 */
export class GroupMembership {
  readonly socketPath: string;
  readonly processId: string;
  readonly memberId: string;
  private readonly credential: ProcessCredential;
  private current: GroupMemberView | null = null;
  private running = true;
  private loop?: Promise<void>;
  /** The last refusal of a re-join (e.g. VERSION_UNSUPPORTED after the agent came back older). */
  lastError: ChangeoverError | null = null;

  private constructor(
    readonly groupId: string,
    private readonly opts: GroupOptions,
  ) {
    const socketPath = opts.socketPath ?? process.env[AGENT_ENV.socket];
    if (!socketPath) throw new Error(`agent-sdk: ${AGENT_ENV.socket} must be set (or pass socketPath)`);
    this.credential = processCredential(opts);
    this.socketPath = socketPath;
    this.processId = this.credential.processId;
    this.memberId = opts.memberId ?? this.processId;
  }

  /** Joins the group; rejects with the agent's typed error (VERSION_UNSUPPORTED, CONFLICT…). */
  static async join(groupId: string, opts: GroupOptions = {}): Promise<GroupMembership> {
    const m = new GroupMembership(groupId, opts);
    await m.joinOnce();
    m.loop = m.follow();
    return m;
  }

  /** The latest view (null only before the first join). */
  get view(): GroupMemberView | null {
    return this.current;
  }

  /** Leader election (cluster version 2 and later); FEATURE_NOT_ACTIVE before the group is adjusted. */
  async leader(): Promise<LeaderReply> {
    const res = await call(this.socketPath, this.credential, 'GET', `${GROUP_PATHS.leader(this.groupId)}?memberId=${encodeURIComponent(this.memberId)}`);
    if (res.status !== 200) throw typed(res.status, res.json, 'leader');
    return LeaderReply.parse(res.json);
  }

  /** Leaves the group (LEAVE in its log) and stops following it. */
  async leave(cause = ''): Promise<void> {
    this.running = false;
    const res = await call(this.socketPath, this.credential, 'POST', GROUP_PATHS.leave(this.groupId), { processId: this.processId, memberId: this.memberId, cause });
    if (res.status !== 200 && res.status !== 404) throw typed(res.status, res.json, 'leave');
    await this.close();
  }

  /** Stops following (the membership stays until the agent or the process goes). */
  async close(): Promise<void> {
    this.running = false;
    await Promise.race([this.loop, new Promise((r) => setTimeout(r, 100))]);
  }

  private set(view: GroupMemberView): void {
    const before = this.current;
    this.current = view;
    if (!before || before.lastSequence !== view.lastSequence || before.joined !== view.joined || before.activeVersion !== view.activeVersion) this.opts.onChange?.(view);
  }

  private async joinOnce(): Promise<void> {
    const res = await call(this.socketPath, this.credential, 'POST', GROUP_PATHS.join(this.groupId), { processId: this.processId, memberId: this.memberId });
    if (res.status !== 200) throw typed(res.status, res.json, 'join');
    this.lastError = null;
    this.set(GroupMemberView.parse(res.json));
  }

  private async follow(): Promise<void> {
    let backoff = 100;
    const wait = this.opts.pollWaitMs ?? 20_000;
    while (this.running) {
      try {
        const after = this.current?.lastSequence ?? 0;
        const res = await call(this.socketPath, this.credential, 'GET', `${GROUP_PATHS.view(this.groupId)}?memberId=${encodeURIComponent(this.memberId)}&after=${after}&waitMs=${wait}`, undefined, wait + 10_000);
        if (!this.running) return;
        if (res.status === 404) {
          // The agent restarted and no longer holds this member: join again.
          await this.joinOnce();
        } else if (res.status === 200) {
          this.set(GroupMemberView.parse(res.json));
        } else {
          throw typed(res.status, res.json, 'view');
        }
        backoff = 100;
      } catch (e) {
        if (!this.running) return;
        if (e instanceof ChangeoverError) this.lastError = e;
        // The agent is gone (stopping for an upgrade): this member is out of the group until it is back.
        if (this.current?.joined) this.set({ ...this.current, joined: false });
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 1000);
      }
    }
  }
}

/** Joins a group through the local agent: `const g = await joinGroup('orders', { memberId })`. */
export const joinGroup = (groupId: string, opts: GroupOptions = {}) => GroupMembership.join(groupId, opts);

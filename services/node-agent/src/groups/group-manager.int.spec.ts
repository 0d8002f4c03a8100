import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { startNats, waitFor, type TestNats } from '@changeover/test-kit';
import { CLUSTER_RECORD, decode, encode, MembershipMessage, STREAMS, subjects, type ValidatedReport } from '@changeover/contracts';
import { GroupLogStore } from './group-log.js';
import { GroupManager } from './group-manager.js';

// Group membership against a real JetStream: concurrent appends from several agents never interleave,
// every agent applies the same log in the same order, and joins are refused for versions an agent cannot run.

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
class Counts {
  readonly seen = new Map<string, number>();
  inc(name: string, labels: Record<string, string> = {}, by = 1) {
    const key = `${name}${JSON.stringify(labels)}`;
    this.seen.set(key, (this.seen.get(key) ?? 0) + by);
  }
  total(prefix: string) {
    return [...this.seen].filter(([k]) => k.startsWith(prefix)).reduce((n, [, v]) => n + v, 0);
  }
}

describe('group manager on JetStream', () => {
  let nats: TestNats;
  let nc: NatsConnection;
  const acks: ValidatedReport[] = [];
  const sink = { publish: (_n: string, report: string, body: unknown) => void (report === 'validated' && acks.push(body as ValidatedReport)) };
  const managers: GroupManager[] = [];
  const counts = new Counts();
  const manager = async (nodeId: string, min: number, max: number) => {
    const m = new GroupManager(nodeId, { min, max }, await GroupLogStore.open(nc), sink, counts, quiet);
    managers.push(m);
    return m;
  };
  const log = async (groupId: string) => {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(STREAMS.groups);
    const out: MembershipMessage[] = [];
    for (let seq = 1; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(STREAMS.groups, { seq });
      if (m?.subject === subjects.groupMembership(groupId)) out.push(decode(MembershipMessage, m.data));
    }
    return out;
  };

  beforeAll(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
  });

  afterAll(async () => {
    for (const m of managers) m.stop();
    await nc?.close();
    await nats?.stop();
  });

  it('thirty concurrent joins from three agents and an ADJUST_VERSION racing them: each appended once, one order seen by every agent', async () => {
    const [a, b, c] = await Promise.all([manager('na', 1, 2), manager('nb', 1, 2), manager('nc', 1, 2)]);
    const store = await GroupLogStore.open(nc);
    // The orchestrator's append, with the same expected-sequence discipline, racing the joins.
    const adjust = (async () => {
      for (;;) {
        const last = await store.lastSequence('race');
        try {
          return await store.append({ reason: 'ADJUST_VERSION', groupId: 'race', version: 2, adjustmentId: 'adj-race', at: new Date().toISOString() }, last);
        } catch {
          // lost the race to a JOIN: read the new end and try again
        }
      }
    })();
    const joining: Promise<unknown>[] = [a!, b!, c!].flatMap((m) => Array.from({ length: 10 }, (_, i) => m.join('race', `${m.nodeId}-${i}`, `p-${m.nodeId}-${i}`)));
    await Promise.all([...joining, adjust]);
    const entries = await log('race');
    const joins = entries.filter((e) => e.reason === 'JOIN').map((e) => (e.reason === 'JOIN' ? e.memberId : ''));
    expect(joins).toHaveLength(30);
    expect(new Set(joins).size).toBe(30);
    expect(entries.filter((e) => e.reason === 'ADJUST_VERSION')).toHaveLength(1);
    expect(counts.total('agent_group_append_conflicts_total')).toBeGreaterThan(0);
    const views = await Promise.all([a!, b!, c!].map((m) => m.view('race', `${m.nodeId}-0`)));
    expect(new Set(views.map((v) => JSON.stringify([v.lastSequence, v.members, v.activeVersion]))).size).toBe(1);
    expect(views[0]!.members.map((m) => m.memberId)).toEqual(joins);
    expect(views[0]!.activeVersion).toBe(2);
    // Members that were in the group when ADJUST_VERSION arrived acknowledged it, keyed by the adjustment.
    expect(acks.filter((r) => r.requestId === 'adjust-adj-race').flatMap((r) => r.groups).every((g) => g.activeVersion === 2)).toBe(true);
  });

  it('validate reports each local member with the view of the log; leader election works from version 2 and is refused before', async () => {
    const d = await manager('nd', 1, 2);
    await d.join('fresh', 'd1', 'p-d1');
    await expect(d.leader('fresh', 'd1')).rejects.toMatchObject({ code: 'FEATURE_NOT_ACTIVE' });
    const report = await d.validate({ requestId: 'r1' });
    expect(report).toEqual({ nodeId: 'nd', requestId: 'r1', groups: [{ groupId: 'fresh', memberId: 'd1', lastSequence: expect.any(Number), activeVersion: 1, members: ['d1'] }] });
    const race = managers.find((m) => m.nodeId === 'na')!; // the three managers of the first test are created concurrently: not in a fixed order
    expect(await race.leader('race', 'na-0')).toMatchObject({ groupId: 'race', version: 2, leader: { memberId: expect.stringMatching(/^n[abc]-\d$/) } });
  });

  it('refuses a join to a group whose version the agent cannot run, and to any group once an adjustment to a version beyond its range is recorded', async () => {
    const old = await manager('nold', 1, 1);
    await expect(old.join('race', 'old-1', 'p-old')).rejects.toMatchObject({ code: 'VERSION_UNSUPPORTED', details: { groupId: 'race', activeVersion: 2 } });
    await old.join('fresh', 'old-2', 'p-old2');
    await jetstream(nc).publish(CLUSTER_RECORD.subject, encode({ activeVersion: 1, target: { version: 2, adjustmentId: 'adj-x' }, at: new Date().toISOString() }));
    await expect(old.join('fresh', 'old-3', 'p-old3')).rejects.toMatchObject({ code: 'VERSION_UNSUPPORTED', details: { target: 2 } });
    expect((await log('race')).some((e) => e.reason === 'JOIN' && e.memberId === 'old-1')).toBe(false);
  });

  it('a malformed message in a group log is skipped and counted; the log goes on', async () => {
    const e = await manager('ne', 1, 2);
    await e.join('noisy', 'e1', 'p-e1');
    await jetstream(nc).publish(subjects.groupMembership('noisy'), new TextEncoder().encode('{"reason":"JOIN","nope":1}'));
    await e.join('noisy', 'e2', 'p-e2');
    await waitFor('counted', () => counts.total('agent_group_messages_rejected_total') === 1);
    expect((await e.view('noisy', 'e2')).members.map((m) => m.memberId)).toEqual(['e1', 'e2']);
  });

  it('leaveAll appends LEAVE for every local member and then refuses joins until the agent is back', async () => {
    const f = await manager('nf', 1, 2);
    await f.join('bye', 'f1', 'p-f1');
    await f.join('bye', 'f2', 'p-f2');
    await f.leaveAll('upgrade');
    expect((await log('bye')).map((x) => `${x.reason}:${'memberId' in x ? x.memberId : ''}`)).toEqual(['JOIN:f1', 'JOIN:f2', 'LEAVE:f1', 'LEAVE:f2']);
    await expect(f.join('bye', 'f3', 'p-f3')).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });

  // Every member the log lists must be answered for by some node's validate, or the cluster-version
  // checks call its group partitioned (GROUP_PARTITIONED: "not reached").
  const unanswered = async (groupId: string, reports: ValidatedReport[]) => {
    const listed = (await log(groupId)).reduce((set, e) => (e.reason === 'JOIN' ? set.add(e.memberId) : e.reason === 'LEAVE' ? (set.delete(e.memberId), set) : set), new Set<string>());
    return [...listed].filter((m) => !reports.some((r) => r.groups.some((g) => g.groupId === groupId && g.memberId === m)));
  };

  it('a member left in the log by an agent restart without LEAVE is retired at the next validate, so no live group looks partitioned', async () => {
    const before = await manager('ngh', 1, 2);
    const other = await manager('ngo', 1, 2);
    await before.join('haunted', 'g1', 'p-g1');
    await before.join('haunted', 'g2', 'p-g2');
    await other.join('haunted', 'o1', 'p-o1');
    before.stop(); // the agent dies: no LEAVE
    const after = await manager('ngh', 1, 2);
    await after.join('haunted', 'g2', 'p-g2'); // g2's process comes back; g1's does not
    // The log still lists g1 on node ngh, and no process holds it: the member that made a healthy group look partitioned.
    expect(await unanswered('haunted', [])).toEqual(['g1', 'g2', 'o1']);
    const retired = counts.total('agent_group_ghosts_retired_total{"kind":"unheld"}');
    const reports = [await after.validate({ requestId: 'v1', groups: ['haunted'] }), await other.validate({ requestId: 'v1', groups: ['haunted'] })];
    expect(reports[0]!.groups.map((g) => g.memberId)).toEqual(['g2']);
    expect(await unanswered('haunted', reports)).toEqual([]);
    expect((await log('haunted')).filter((e) => e.reason === 'LEAVE')).toEqual([expect.objectContaining({ memberId: 'g1', nodeId: 'ngh', cause: 'no process on the node holds this member' })]);
    expect(counts.total('agent_group_ghosts_retired_total{"kind":"unheld"}')).toBe(retired + 1);
    expect((await after.view('haunted', 'g2')).members.map((m) => m.memberId)).toEqual(['g2', 'o1']);
  });

  it('a LEAVE that fails when a process stops is counted, the member is still answered for, and the next validate appends it', async () => {
    const real = await GroupLogStore.open(nc);
    let failLeaves = true;
    const flaky = {
      lastSequence: (g: string) => real.lastSequence(g),
      follow: (g: string, on: Parameters<typeof real.follow>[1], poll?: Parameters<typeof real.follow>[2]) => real.follow(g, on, poll),
      clusterRecord: () => real.clusterRecord(),
      append: (msg: MembershipMessage, last: number) => (failLeaves && msg.reason === 'LEAVE' ? Promise.reject(new Error('nats: timeout')) : real.append(msg, last)),
    };
    const warnings: string[] = [];
    const m = new GroupManager('nfl', { min: 1, max: 2 }, flaky, sink, counts, { ...quiet, warn: (msg: string) => void warnings.push(msg) });
    managers.push(m);
    await m.join('flaky', 'm1', 'p-m1');
    m.processGone('p-m1');
    await waitFor('the failed leave counted', () => counts.total('agent_group_leave_failures_total{"code":"INTERNAL"}') >= 1);
    expect(warnings).toContain('leave not appended; retried at the next validate');
    // Still in the log and still held: the validate answers for it instead of leaving a ghost.
    const during = await m.validate({ requestId: 'f1', groups: ['flaky'] });
    expect(during.groups.map((g) => g.memberId)).toEqual(['m1']);
    expect(await unanswered('flaky', [during])).toEqual([]);
    failLeaves = false;
    const afterwards = await m.validate({ requestId: 'f2', groups: ['flaky'] });
    expect(afterwards.groups).toEqual([]);
    expect(await unanswered('flaky', [afterwards])).toEqual([]);
    expect((await log('flaky')).map((e) => `${e.reason}:${'cause' in e ? e.cause : ''}`)).toEqual(['JOIN:', 'LEAVE:process p-m1 stopped']);
    expect(counts.total('agent_group_ghosts_retired_total{"kind":"leave-retried"}')).toBe(1);
  });

  // Last in this file: it deletes the groups stream (and makes it again).
  it('a log poll that fails is counted and logged once for the run, and the recovery is logged', async () => {
    const infos: string[] = [];
    const warnings: string[] = [];
    const m = new GroupManager('npoll', { min: 1, max: 2 }, await GroupLogStore.open(nc), sink, counts, { ...quiet, info: (msg: string) => void infos.push(msg), warn: (msg: string) => void warnings.push(msg) });
    managers.push(m);
    await m.join('polled', 'p1', 'p-p1');
    const before = counts.total('agent_group_poll_failures_total');
    await (await jetstreamManager(nc)).streams.delete(STREAMS.groups);
    await waitFor('the failed poll logged', () => warnings.includes('group log poll failed; retrying every poll'));
    // Every follower's polls fail and are counted (the other agents of this file follow their groups too); this one warned once for the run.
    await waitFor('more failed polls', () => counts.total('agent_group_poll_failures_total') >= before + 10);
    expect(warnings.filter((w) => w === 'group log poll failed; retrying every poll')).toHaveLength(1);
    await GroupLogStore.open(nc); // the stream again
    await waitFor('the recovery logged', () => infos.includes('group log readable again'));
  });
});

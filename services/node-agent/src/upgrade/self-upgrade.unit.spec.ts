import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { ProgressReport } from '@changeover/contracts';
import { CounterRegistry } from '../metrics.js';
import { FsStore } from '../store/fs-store.js';
import { AGENT_UPGRADE_FAILED, MEMBERS_NOT_REJOINED, SelfUpgrade } from './self-upgrade.js';
import { AGENT_UPGRADE_PROBATION_FAILED } from './probation.js';
import { LAUNCH_FILES, type RollbackNote } from './launcher-config.js';

// After the agent restarted into its new version, the held completion goes out only once every member is back.

describe('self-upgrade resume', () => {
  let dir: string;
  let members: { groupId: string; memberId: string }[];
  let published: ProgressReport[];
  let counters: CounterRegistry;
  let store: FsStore;
  const report: ProgressReport = { nodeId: 'n1', rolloutId: 'agent-2', attempt: 0, phase: 'completed' };

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'self-upgrade-'));
    store = await FsStore.open(dir);
    members = [];
    published = [];
    counters = new CounterRegistry();
    writeFileSync(join(dir, 'self-upgrade.json'), JSON.stringify({ report, members: [{ groupId: 'orders', memberId: 'm1' }, { groupId: 'orders', memberId: 'm2' }] }));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const upgrade = (probation?: () => Promise<unknown>) =>
    new SelfUpgrade({
      ...(probation ? { probation } : {}),
      stateDir: dir,
      agentPackage: 'changeover-agent',
      agentVersion: '2.0.0',
      sink: { publish: (_n, kind, body) => void (kind === 'progress' && published.push(body as ProgressReport)) },
      log: { info: () => undefined, warn: () => undefined, error: () => undefined },
      counters,
      store,
      groups: () => ({ localMembers: () => members }),
      restart: async () => undefined,
    });

  it('reports completion once every member that left is back', async () => {
    const u = upgrade();
    await u.load();
    const done = u.resume(30_000);
    members = [{ groupId: 'orders', memberId: 'm1' }];
    await new Promise((r) => setImmediate(r));
    expect(published).toEqual([]);
    members = [{ groupId: 'orders', memberId: 'm1' }, { groupId: 'orders', memberId: 'm2' }];
    await done;
    expect(published).toEqual([report]);
    expect(existsSync(join(dir, 'self-upgrade.json'))).toBe(false);
  });

  it('reports a typed failure naming the members not back by the deadline, not completion', async () => {
    const u = upgrade();
    await u.load();
    members = [{ groupId: 'orders', memberId: 'm1' }];
    await u.resume(300);
    expect(published).toEqual([{ ...report, phase: 'failed', error: { code: MEMBERS_NOT_REJOINED, message: expect.stringContaining('orders/m2') } }]);
    expect(published[0]!.error!.message).not.toContain('orders/m1');
    expect(counters.get('agent_upgrade_failures_total', { reason: MEMBERS_NOT_REJOINED })).toBe(1);
    expect(existsSync(join(dir, 'self-upgrade.json'))).toBe(false);
  });

  it('holds the completion until the launcher says the probation passed', async () => {
    let pass!: () => void;
    const passed = new Promise<void>((r) => (pass = r));
    const u = upgrade(() => passed);
    await u.load();
    members = [{ groupId: 'orders', memberId: 'm1' }, { groupId: 'orders', memberId: 'm2' }];
    const done = u.resume(30_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(published).toEqual([]);
    // Still held on disk: a rollback during the probation finds it for the version started instead.
    expect(existsSync(join(dir, 'self-upgrade.json'))).toBe(true);
    pass();
    await done;
    expect(published).toEqual([report]);
  });

  it.each([
    ['probation', AGENT_UPGRADE_PROBATION_FAILED, 'failed during its probation'],
    ['start', AGENT_UPGRADE_FAILED, 'did not come up'],
  ] as const)('after a rollback at %s the version started instead reports %s and runs its previous set', async (stage, code, text) => {
    const note: RollbackNote = { failedEntry: '/state/modules/abc', reason: 'exited with code 70', at: new Date().toISOString(), stage };
    writeFileSync(join(dir, LAUNCH_FILES.rollback), JSON.stringify(note));
    const before = await store.load();
    await store.save({ ...before, active: [], previous: before.active, records: [{ rolloutId: 'agent-2', commitAttempt: 0, final: report }] });
    const u = upgrade(() => new Promise(() => undefined));
    await u.load();
    members = [{ groupId: 'orders', memberId: 'm1' }, { groupId: 'orders', memberId: 'm2' }];
    // No probation for the version that ran before: its failure report goes out at once.
    await u.resume(30_000);
    expect(published).toEqual([{ ...report, phase: 'failed', error: { code, message: expect.stringContaining(text) }, inventory: expect.anything() }]);
    expect(published[0]!.error!.message).toContain('exited with code 70');
    expect(counters.get('agent_upgrade_failures_total', { reason: code })).toBe(1);
    expect(existsSync(join(dir, LAUNCH_FILES.rollback))).toBe(false);
    // A repeated commit of that rollout is answered with the failure, not with the completion that installed the failed version.
    expect((await store.load()).records.find((r) => r.rolloutId === 'agent-2')?.final).toEqual(published[0]);
  });
});

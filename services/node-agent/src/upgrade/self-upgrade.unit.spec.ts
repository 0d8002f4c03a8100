import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { ProgressReport } from '@changeover/contracts';
import { CounterRegistry } from '../metrics.js';
import { FsStore } from '../store/fs-store.js';
import { MEMBERS_NOT_REJOINED, SelfUpgrade } from './self-upgrade.js';

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

  const upgrade = () =>
    new SelfUpgrade({
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
});

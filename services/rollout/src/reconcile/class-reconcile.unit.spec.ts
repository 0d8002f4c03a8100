import { createHash } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { ChangeoverError, RolloutPolicy, type HelloReport, type Inventory, type PackageRef, type RolloutSummary, type SoftwareUpdate } from '@changeover/contracts';
import { createLogger } from '@changeover/telemetry';
import { missingPackages, reconcileOnHello, reconcileRolloutId, sharedClassLookups, type ReconcileDeps } from './class-reconcile.js';

const inv = (...refs: string[]): Inventory => ({
  active: refs.map((r) => ({ name: r.split('@')[0]!, version: r.split('@')[1]!, modules: [], requires: {}, provides: [], consumes: [] })),
  previous: [],
  digest: `sha256:${createHash('sha256').update(refs.join(',')).digest('hex')}`,
});
const hello = (inventory: Inventory): HelloReport => ({ nodeId: 'n-1', classId: 'web', processorType: 'x86_64', characteristics: { arch: 'x86_64', os: 'linux', memoryMb: 1024, labels: {} }, agentVersion: '1.0.0', clusterVersions: { min: 1, max: 1 }, inventory, startedAt: new Date(0).toISOString() });
const desired: PackageRef[] = [{ name: 'app', version: '2.0.0' }, { name: 'lib', version: '1.0.0' }];

function deps(over: Partial<ReconcileDeps> & { fail?: ChangeoverError[] } = {}) {
  const created: { rolloutId: string; update: SoftwareUpdate }[] = [];
  const failures = [...(over.fail ?? [])];
  const d: ReconcileDeps = {
    classPackages: async () => desired,
    inActiveRollout: () => false,
    coveringRollout: async () => null,
    exclusive: (_nodeId, work) => work(),
    create: async (req) => {
      const e = failures.shift();
      if (e) throw e;
      created.push(req);
      return {} as RolloutSummary;
    },
    policy: RolloutPolicy.parse({}),
    log: createLogger('reconcile-test', { level: 'silent' }),
    retryMs: 1,
    ...over,
  };
  return { d, created };
}

describe('reconcile on hello', () => {
  it('rolls out exactly the desired packages the node lacks in that version, to that node', async () => {
    const { d, created } = deps();
    expect(await reconcileOnHello(hello(inv('app@1.0.0', 'lib@1.0.0')), d)).toBe('started');
    expect(created).toEqual([{ rolloutId: reconcileRolloutId('n-1', 'web', desired, inv('app@1.0.0', 'lib@1.0.0').digest), update: { description: 'reconcile n-1 to class web', targets: [{ nodes: ['n-1'], packages: [{ name: 'app', version: '2.0.0' }] }] }, policy: d.policy }]);
    expect(missingPackages(desired, inv('app@2.0.0', 'lib@1.0.0', 'extra@1.0.0'))).toEqual([]);
  });
  it('does nothing for a node in step, a class without configuration, or a node an unfinished rollout has', async () => {
    expect(await reconcileOnHello(hello(inv('app@2.0.0', 'lib@1.0.0')), deps().d)).toBe('in-step');
    expect(await reconcileOnHello(hello(inv()), deps({ classPackages: async () => [] }).d)).toBe('no-configuration');
    expect(await reconcileOnHello(hello(inv()), deps({ classPackages: async () => null }).d)).toBe('no-configuration');
    const busy = deps({ inActiveRollout: () => true });
    expect(await reconcileOnHello(hello(inv()), busy.d)).toBe('in-rollout');
    expect(busy.created).toEqual([]);
    // Another instance's rollout has the node: seen through the cluster-wide query, under the node's lock.
    const locked: string[] = [];
    const elsewhere = deps({ coveringRollout: async () => 'r-other', exclusive: (nodeId, work) => (locked.push(nodeId), work()) });
    expect(await reconcileOnHello(hello(inv()), elsewhere.d)).toBe('in-rollout');
    expect(elsewhere.created).toEqual([]);
    expect(locked).toEqual(['n-1']);
  });
  it('names one rollout per node state: the same hello again is a duplicate, another inventory a new id', async () => {
    const { d } = deps({ fail: [new ChangeoverError('CONFLICT', 'exists')] });
    expect(await reconcileOnHello(hello(inv()), d)).toBe('duplicate');
    expect(reconcileRolloutId('n-1', 'web', desired, inv().digest)).toBe(reconcileRolloutId('n-1', 'web', desired, inv().digest));
    expect(reconcileRolloutId('n-1', 'web', desired, inv().digest)).not.toBe(reconcileRolloutId('n-1', 'web', desired, inv('app@1.0.0').digest));
    expect(reconcileRolloutId('n-1', 'web', desired, inv().digest)).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
  });
  it('retries while the registry has not enrolled the node, and gives up on a refusal', async () => {
    const late = deps({ fail: [new ChangeoverError('NOT_FOUND', 'unknown node(s): n-1'), new ChangeoverError('UNAVAILABLE', 'registry away')] });
    expect(await reconcileOnHello(hello(inv()), late.d)).toBe('started');
    expect(late.created).toHaveLength(1);
    const refused = deps({ fail: [new ChangeoverError('PROCESSOR_UNSUPPORTED', 'no module')] });
    expect(await reconcileOnHello(hello(inv()), refused.d)).toBe('refused');
    const gone = deps({ fail: Array.from({ length: 4 }, () => new ChangeoverError('NOT_FOUND', 'unknown node(s): n-1')) });
    expect(await reconcileOnHello(hello(inv()), gone.d)).toBe('failed');
  });
});

describe('shared class lookups', () => {
  it('asks the registry once per class within the window, again after it, and keeps no failure', async () => {
    let t = 0;
    const asked: string[] = [];
    let fail = false;
    const lookup = sharedClassLookups(async (classId) => {
      asked.push(classId);
      if (fail) throw new ChangeoverError('UNAVAILABLE', 'registry away');
      return [{ name: 'app', version: '1.0.0' }];
    }, 1000, () => t);
    await Promise.all([lookup('web'), lookup('web'), lookup('api'), lookup('web')]);
    expect(asked).toEqual(['web', 'api']);
    t = 1000;
    fail = true;
    await expect(lookup('web')).rejects.toThrow('registry away');
    fail = false;
    expect(await lookup('web')).toEqual([{ name: 'app', version: '1.0.0' }]);
    expect(asked).toEqual(['web', 'api', 'web', 'web']);
  });
});

import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import {
  ClassRecord,
  encode,
  GetPackagesReply,
  ListNodesReply,
  NodeRecord,
  PublishPackageReply,
  SelectModulesReply,
  subjects,
  type HeartbeatReport,
  type HelloReport,
} from '@changeover/contracts';
import { waitFor } from '@changeover/test-kit';
import { buildPackage, inventoryChanges, inventoryOf, publishRequest, sign, startTestRegistry, type TestRegistry } from './testing/registry.fixtures.js';

function hello(nodeId: string, classId: string, processorType: 'x86_64' | 'arm64', inv = inventoryOf(), memoryMb = 4096): HelloReport {
  return {
    nodeId,
    classId,
    processorType,
    characteristics: { arch: processorType, os: 'linux', memoryMb, labels: { zone: nodeId.endsWith('1') ? 'a' : 'b' } },
    agentVersion: '1.0.0',
    clusterVersions: { min: 1, max: 2 },
    inventory: inv,
    startedAt: new Date().toISOString(),
  };
}

const heartbeat = (nodeId: string, classId: string): HeartbeatReport => ({
  nodeId,
  classId,
  at: new Date().toISOString(),
  agentVersion: '1.0.1',
  clusterVersions: { min: 1, max: 3 },
  inventoryDigest: inventoryOf().digest,
  phase: 'idle',
});

jest.setTimeout(60_000);

describe('registry over NATS', () => {
  let t: TestRegistry;
  const billing = buildPackage('billing', '1.0.0', [
    { name: 'server', processorType: 'x86_64', content: 'billing server x86' },
    { name: 'server', processorType: 'arm64', content: 'billing server arm' },
    { name: 'config', content: 'shared config' },
  ], { provides: ['billing-api@1.0.0'], consumes: ['auth-api@^1'] });
  const gpu = buildPackage('gpu-tools', '2.0.0', [{ name: 'tools', processorType: 'x86_64', content: 'gpu', requires: { labels: { gpu: 'yes' } } }]);

  beforeAll(async () => {
    t = await startTestRegistry();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('publishes a package with its blobs and serves the signed manifest to get-packages', async () => {
    const reply = await t.rpc('publish-package', publishRequest(sign(billing), billing.blobs), PublishPackageReply);
    expect(reply).toMatchObject({ package: { name: 'billing', version: '1.0.0' }, created: true, signatureVerdict: 'unsigned' });
    const again = await t.rpc('publish-package', publishRequest(sign(billing), billing.blobs), PublishPackageReply);
    expect(again.created).toBe(false);
    const got = await t.rpc('get-packages', { packages: [{ name: 'billing', version: '1.0.0' }] }, GetPackagesReply);
    expect(got.packages[0]!.manifest).toEqual(billing.manifest);
    expect((await t.registry.domain.blobs.list()).sort()).toEqual([...billing.blobs.keys()].sort());
    const events = await t.registry.events.readStream('package-billing');
    expect(events.map((e) => e.type)).toEqual(['package.published']);
  });

  it('answers get-packages for an unknown version with NOT_FOUND naming it', async () => {
    await expect(t.rpc('get-packages', { packages: [{ name: 'billing', version: '9.9.9' }] }, GetPackagesReply)).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining('billing@9.9.9') });
  });

  it('enrols nodes on hello, applies heartbeats in batches and stores inventories, with events', async () => {
    t.nc.publish(subjects.agent('n-x1', 'hello'), encode(hello('n-x1', 'web', 'x86_64')));
    t.nc.publish(subjects.agent('n-x2', 'hello'), encode(hello('n-x2', 'web', 'x86_64')));
    t.nc.publish(subjects.agent('n-a1', 'hello'), encode(hello('n-a1', 'web', 'arm64')));
    await waitFor('three nodes', async () => (await t.rpc('list-nodes', {}, ListNodesReply)).nodes.length === 3);
    const web = await t.rpc('list-nodes', { classId: 'web', status: 'active' }, ListNodesReply);
    expect(web.nodes.map((n) => n.nodeId)).toEqual(['n-a1', 'n-x1', 'n-x2']);
    expect((await t.rpc('list-nodes', { label: 'zone=a' }, ListNodesReply)).nodes.map((n) => n.nodeId)).toEqual(['n-a1', 'n-x1']);
    const page = await t.rpc('list-nodes', { limit: 2 }, ListNodesReply);
    expect(page.next).toBe('n-x1');
    expect((await t.rpc('list-nodes', { limit: 2, after: page.next }, ListNodesReply)).nodes.map((n) => n.nodeId)).toEqual(['n-x2']);

    t.nc.publish(subjects.agent('n-x1', 'heartbeat'), encode(heartbeat('n-x1', 'web')));
    await waitFor('heartbeat buffered', () => t.registry.domain.counters.get('registry_agent_reports_total', { report: 'heartbeat' }) === 1);
    await t.registry.domain.nodes.flushHeartbeats();
    const x1 = (await t.rpc('list-nodes', { nodeIds: ['n-x1'] }, ListNodesReply)).nodes[0]!;
    expect(x1).toMatchObject({ agentVersion: '1.0.1', clusterVersions: { min: 1, max: 3 }, status: 'active' });

    const inv = inventoryOf('billing@1.0.0');
    t.nc.publish(subjects.agent('n-x2', 'inventory'), encode({ nodeId: 'n-x2', at: new Date().toISOString(), inventory: inv }));
    await waitFor('inventory stored', async () => (await t.rpc('list-nodes', { nodeIds: ['n-x2'] }, ListNodesReply)).nodes[0]!.inventory?.digest === inv.digest);
    expect((await t.registry.events.readStream('node-n-x2')).map((e) => e.type)).toEqual(['node.enrolled']);
    const changes = await inventoryChanges(t, 'n-x2');
    expect(changes).toHaveLength(2);
    expect(changes[1]).toEqual({ inventoryDigest: inv.digest, packages: ['billing@1.0.0'] });
  });

  it('writes a storm of hellos larger than one write (a fleet starting): every node enrolled once, a repeated hello after the first', async () => {
    // More than one append's worth of events (10,000): the write goes in parts.
    const ids = Array.from({ length: 10_500 }, (_, i) => `storm-${i}`);
    const before = t.registry.domain.counters.get('registry_agent_reports_total', { report: 'hello' });
    const later = inventoryOf('billing@1.0.0');
    // All at once, as a fleet's hellos arrive while a write runs; ten nodes say hello twice, the second time on other packages.
    await Promise.all([
      ...ids.map((id) => t.registry.domain.nodes.hello(id, hello(id, 'storm', 'x86_64'))),
      ...ids.slice(0, 10).map((id) => t.registry.domain.nodes.hello(id, hello(id, 'storm', 'arm64', later))),
    ]);
    expect(t.registry.domain.counters.get('registry_agent_reports_total', { report: 'hello' })).toBe(before + 10_510);
    expect((await t.rpc('get-class', { classId: 'storm' }, ClassRecord)).nodes).toBe(10_500);
    const twice = (await t.rpc('list-nodes', { nodeIds: ['storm-0', 'storm-10499'] }, ListNodesReply)).nodes;
    expect(twice.map((n) => [n.nodeId, n.processorType, n.inventory?.digest, n.status])).toEqual([
      ['storm-0', 'arm64', later.digest, 'active'],
      ['storm-10499', 'x86_64', inventoryOf().digest, 'active'],
    ]);
    for (const id of ['storm-0', 'storm-5000', 'storm-10499']) expect((await t.registry.events.readStream(`node-${id}`)).map((e) => e.type)).toEqual(['node.enrolled']);
    // Each node's inventory change is in the inventories stream: its first hello's, and the second's for the ten.
    expect((await inventoryChanges(t, 'storm-0')).map((c) => c.inventoryDigest)).toEqual([inventoryOf().digest, later.digest]);
    expect(await inventoryChanges(t, 'storm-10499')).toHaveLength(1);
  });

  it('rejects and counts a report whose body names another node than its subject', async () => {
    t.nc.publish(subjects.agent('n-x1', 'hello'), encode(hello('n-evil', 'web', 'x86_64')));
    t.nc.publish(subjects.agent('n-x1', 'heartbeat'), encode({ nodeId: 'n-x1' }));
    await waitFor('rejection counted', () => t.registry.domain.counters.get('registry_agent_reports_rejected_total', { report: 'hello', code: 'FORBIDDEN' }) === 1);
    expect((await t.rpc('list-nodes', { nodeIds: ['n-evil'] }, ListNodesReply)).nodes).toEqual([]);
  });

  it('selects modules per processor type, one class assignment when uniform, grouped otherwise', async () => {
    const reply = await t.rpc('select-modules', { packages: [{ name: 'billing', version: '1.0.0' }], classes: ['web'] }, SelectModulesReply);
    // x86 and arm nodes get different server modules: no class broadcast, two groups.
    expect(reply.assignments).toHaveLength(2);
    const x86 = reply.assignments.find((a) => a.nodes.includes('n-x1'))!;
    expect(x86.classId).toBeUndefined();
    expect(x86.nodes.sort()).toEqual(['n-x1', 'n-x2']);
    expect(x86.packages[0]!.modules.map((m) => `${m.name}/${m.processorType}`).sort()).toEqual(['config/any', 'server/x86_64']);
    const arm = reply.assignments.find((a) => a.nodes.includes('n-a1'))!;
    expect(arm.packages[0]!.modules.map((m) => `${m.name}/${m.processorType}`).sort()).toEqual(['config/any', 'server/arm64']);
    expect(arm.selectionId).not.toBe(x86.selectionId);

    t.nc.publish(subjects.agent('n-x9', 'hello'), encode(hello('n-x9', 'batch', 'x86_64')));
    t.nc.publish(subjects.agent('n-x8', 'hello'), encode(hello('n-x8', 'batch', 'x86_64')));
    await waitFor('batch class', async () => (await t.rpc('get-class', { classId: 'batch' }, ClassRecord)).nodes === 2);
    const uniform = await t.rpc('select-modules', { packages: [{ name: 'billing', version: '1.0.0' }], classes: ['batch'], nodes: ['n-x1', 'ghost'] }, SelectModulesReply);
    expect(uniform.assignments.find((a) => a.classId === 'batch')?.nodes.sort()).toEqual(['n-x8', 'n-x9']);
    expect(uniform.assignments.find((a) => a.nodes.includes('n-x1'))?.classId).toBeUndefined();
    expect(uniform.unknownNodes).toEqual(['ghost']);
  });

  it('reports a package without a module for the node as unsupported', async () => {
    await t.rpc('publish-package', publishRequest(sign(gpu), gpu.blobs), PublishPackageReply);
    const reply = await t.rpc('select-modules', { packages: [{ name: 'gpu-tools', version: '2.0.0' }], nodes: ['n-a1', 'n-x1'] }, SelectModulesReply);
    expect(reply.assignments).toEqual([]);
    expect(reply.unsupported).toEqual([
      { nodeId: 'n-a1', package: 'gpu-tools@2.0.0', processorType: 'arm64', reason: expect.stringContaining('no module tools for processor type arm64') },
      { nodeId: 'n-x1', package: 'gpu-tools@2.0.0', processorType: 'x86_64', reason: expect.stringContaining('label gpu=yes') },
    ]);
  });

  it('sets a class configuration and emits class.configuration-changed once per change', async () => {
    const set = { classId: 'web', packages: [{ name: 'billing', version: '1.0.0' }], description: 'front' };
    const rec = await t.rpc('set-class', set, ClassRecord);
    expect(rec).toMatchObject({ classId: 'web', packages: set.packages, nodes: 3 });
    await t.rpc('set-class', set, ClassRecord);
    expect((await t.registry.events.readStream('class-web')).map((e) => e.type)).toEqual(['class.configuration-changed']);
    await expect(t.rpc('set-class', { classId: 'web', packages: [{ name: 'nope', version: '1.0.0' }] }, ClassRecord)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('enrols a node by request and refuses an id that is not subject-safe', async () => {
    const rec = await t.rpc('enroll-node', { nodeId: 'db-1', classId: 'db', processorType: 'arm64', characteristics: { arch: 'arm64', memoryMb: 1024 } }, NodeRecord);
    expect(rec).toMatchObject({ nodeId: 'db-1', status: 'stale', lastHeartbeatAt: null });
    await expect(t.rpc('enroll-node', { nodeId: 'db.1>', classId: 'db', processorType: 'arm64', characteristics: { arch: 'arm64', memoryMb: 1 } }, NodeRecord)).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
      message: expect.stringContaining('nodeId'),
    });
    await expect(t.rpc('enroll-node', { nodeId: 'db-2', classId: 'db', processorType: 'sparc', characteristics: { arch: 'arm64', memoryMb: 1 } }, NodeRecord)).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
      message: expect.stringContaining('processorType'),
    });
    expect((await t.rpc('list-nodes', { classId: 'db' }, ListNodesReply)).nodes.map((n) => n.nodeId)).toEqual(['db-1']);
  });

  it('marks silent nodes stale on the sweep and active again on their next heartbeat', async () => {
    const later = new Date(Date.now() + 10 * 60_000);
    const stale = await t.registry.domain.nodes.sweep(later);
    expect(stale).toEqual(expect.arrayContaining(['n-x1', 'n-a1']));
    expect((await t.registry.events.readStream('node-n-a1')).map((e) => e.type)).toContain('node.went-stale');
    expect((await t.registry.domain.nodes.sweep(later)).length).toBe(0);
    t.nc.publish(subjects.agent('n-a1', 'heartbeat'), encode(heartbeat('n-a1', 'web')));
    await waitFor('heartbeat buffered', () => t.registry.domain.counters.get('registry_agent_reports_total', { report: 'heartbeat' }) === 2);
    await t.registry.domain.nodes.flushHeartbeats();
    expect((await t.registry.events.readStream('node-n-a1')).map((e) => e.type).slice(-2)).toEqual(['node.went-stale', 'node.became-active']);
  });
});

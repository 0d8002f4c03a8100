import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { jetstreamManager } from '@nats-io/jetstream';
import { encode, NodeRecord, PublishPackageReply, RolloutPolicy, STREAMS, subjects, type HelloReport, type Inventory } from '@changeover/contracts';
import { waitFor } from '@changeover/test-kit';
import { buildPackage, helloReport, inventoryChanges, inventoryOf, publishRequest, sign, startTestRegistry, type TestRegistry } from './testing/registry.fixtures.js';

jest.setTimeout(60_000);

const hello = (nodeId: string, inventory: Inventory): HelloReport =>
  helloReport(nodeId, inventory, { classId: 'edge', characteristics: { arch: 'x86_64', os: 'linux', memoryMb: 512, labels: {} }, clusterVersions: { min: 1, max: 1 } });

describe('registry policies: retention, required enrollment, events on JetStream', () => {
  let t: TestRegistry;
  const tool = (version: string) => buildPackage('tool', version, [{ name: 'shared', content: 'same in every version' }, { name: 'bin', content: `tool ${version}` }]);
  const publish = (version: string) => t.rpc('publish-package', publishRequest(sign(tool(version)), tool(version).blobs), PublishPackageReply);
  const versions = async () => ((await t.registry.db.query<{ version: string }>(`SELECT version FROM registry_packages WHERE name = 'tool' ORDER BY version`)).map((r) => r.version));
  const uniqueBlob = (version: string) => [...tool(version).blobs.keys()][1]!;

  beforeAll(async () => {
    t = await startTestRegistry({ REGISTRY_RETAIN_VERSIONS: '2', REGISTRY_REQUIRE_ENROLLMENT: 'true' });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('refuses and counts reports from nodes that are not enrolled', async () => {
    t.nc.publish(subjects.agent('ghost', 'hello'), encode(hello('ghost', inventoryOf('tool@1.0.0'))));
    t.nc.publish(subjects.agent('ghost', 'inventory'), encode({ nodeId: 'ghost', at: new Date().toISOString(), inventory: inventoryOf('tool@1.0.0') }));
    t.nc.publish(subjects.agent('ghost', 'heartbeat'), encode({ nodeId: 'ghost', classId: 'edge', at: new Date().toISOString(), agentVersion: '1.0.0', clusterVersions: { min: 1, max: 1 }, inventoryDigest: inventoryOf('a@1.0.0').digest, phase: 'idle' }));
    const counters = t.registry.domain.counters;
    await waitFor('hello and inventory rejected', () => counters.get('registry_agent_reports_rejected_total', { code: 'NOT_FOUND' }) === 2);
    await waitFor('heartbeat received', () => counters.get('registry_agent_reports_total', { report: 'heartbeat' }) === 1);
    await t.registry.domain.nodes.flushHeartbeats();
    expect(counters.get('registry_agent_reports_rejected_total', { report: 'heartbeat', code: 'NOT_FOUND' })).toBe(1);
    expect(await t.registry.db.query('SELECT node_id FROM registry_nodes')).toEqual([]);
  });

  it('accepts the reports of an enrolled node and refuses a hello claiming another class', async () => {
    await t.rpc('enroll-node', { nodeId: 'edge-1', classId: 'edge', processorType: 'x86_64', characteristics: { arch: 'x86_64', memoryMb: 512 } }, NodeRecord);
    t.nc.publish(subjects.agent('edge-1', 'hello'), encode({ ...hello('edge-1', inventoryOf('tool@1.0.0')), classId: 'core' }));
    await waitFor('class mismatch refused', () => t.registry.domain.counters.get('registry_agent_reports_rejected_total', { report: 'hello', code: 'FORBIDDEN' }) === 1);
    t.nc.publish(subjects.agent('edge-1', 'hello'), encode(hello('edge-1', inventoryOf('tool@1.0.0'))));
    await waitFor('hello applied', async () => (await t.registry.domain.nodes.get('edge-1')).status === 'active');
  });

  it('hellos gathered into one transaction: refused ones are undone alone, the others stored with their events', async () => {
    await t.rpc('enroll-node', { nodeId: 'edge-2', classId: 'edge', processorType: 'x86_64', characteristics: { arch: 'x86_64', memoryMb: 512 } }, NodeRecord);
    await t.rpc('enroll-node', { nodeId: 'edge-3', classId: 'edge', processorType: 'x86_64', characteristics: { arch: 'x86_64', memoryMb: 512 } }, NodeRecord);
    const nodes = t.registry.domain.nodes;
    // Same tick: one batch, in which two hellos are refused (unknown node, wrong class).
    const outcomes = await Promise.allSettled([
      nodes.hello('edge-2', hello('edge-2', inventoryOf('tool@2.0.0'))),
      nodes.hello('ghost-2', hello('ghost-2', inventoryOf('tool@2.0.0'))),
      nodes.hello('edge-3', { ...hello('edge-3', inventoryOf('tool@2.0.0')), classId: 'core' }),
      nodes.hello('edge-3', hello('edge-3', inventoryOf('tool@3.0.0'))),
    ]);
    expect(outcomes.map((o) => (o.status === 'fulfilled' ? 'ok' : (o.reason as { code: string }).code))).toEqual(['ok', 'NOT_FOUND', 'FORBIDDEN', 'ok']);
    expect((await nodes.get('edge-2')).inventory?.digest).toBe(inventoryOf('tool@2.0.0').digest);
    expect((await nodes.get('edge-3')).inventory?.digest).toBe(inventoryOf('tool@3.0.0').digest);
    expect(await t.registry.db.query(`SELECT node_id FROM registry_nodes WHERE node_id = 'ghost-2'`)).toEqual([]);
    const types = async (id: string) => (await t.registry.events.readStream(`node-${id}`)).map((e) => e.type);
    expect(await types('edge-2')).toEqual(['node.enrolled']);
    expect(await types('edge-3')).toEqual(['node.enrolled']);
    expect(await types('ghost-2')).toEqual([]);
    // The refused hello's inventory (edge-3 in class core) was undone with it, event included.
    const digests = async (id: string) => (await inventoryChanges(t, id)).map((c) => c.inventoryDigest);
    expect(await digests('edge-2')).toEqual([inventoryOf('tool@2.0.0').digest]);
    expect(await digests('edge-3')).toEqual([inventoryOf('tool@3.0.0').digest]);
    expect(await digests('ghost-2')).toEqual([]);
  });

  it('relays registry events to JetStream CHANGEOVER_EVENTS as CloudEvents', async () => {
    await publish('1.0.0');
    const jsm = await jetstreamManager(t.nc);
    const msg = await waitFor('package.published on JetStream', () => jsm.streams.getMessage(STREAMS.events, { last_by_subj: 'changeover.events.package.published' }).catch(() => null));
    expect(msg.json()).toMatchObject({ type: 'io.changeover.package.published', data: { package: { name: 'tool', version: '1.0.0' } } });
  });

  it('keeps the last N versions but never one a node runs or an unfinished rollout uses', async () => {
    await publish('1.1.0');
    const update = { description: '', targets: [{ classes: ['edge'], packages: [{ name: 'tool', version: '1.1.0' }] }] };
    await t.registry.events.append('rollout-r1', 'any', [
      { type: 'rollout.created', data: { rolloutId: 'r1', update, policy: RolloutPolicy.parse({}), assignments: [], unsupported: [], createdBy: 'test', at: new Date().toISOString() } },
    ]);
    await waitFor('rollout reference recorded', async () => (await t.registry.db.query(`SELECT 1 FROM registry_rollout_refs WHERE rollout_id = 'r1'`)).length === 1);
    await publish('1.2.0');
    await publish('1.3.0');
    expect(await versions()).toEqual(['1.0.0', '1.1.0', '1.2.0', '1.3.0']);
    await publish('1.4.0');
    // 1.0.0 is installed on edge-1, 1.1.0 is used by rollout r1: only 1.2.0 goes.
    expect(await versions()).toEqual(['1.0.0', '1.1.0', '1.3.0', '1.4.0']);
    const blobs = await t.registry.domain.blobs.list();
    expect(blobs).not.toContain(uniqueBlob('1.2.0'));
    expect(blobs).toContain(uniqueBlob('1.1.0'));
    expect(blobs).toContain([...tool('1.2.0').blobs.keys()][0]);
    expect((await t.registry.events.readStream('package-tool')).map((e) => e.type)).toContain('package.pruned');

    await t.registry.events.append('rollout-r1', 'any', [{ type: 'rollout.completed', data: { rolloutId: 'r1', nodes: 1, failed: 0, at: new Date().toISOString() } }]);
    await waitFor('rollout reference released', async () => (await t.registry.db.query(`SELECT 1 FROM registry_rollout_refs`)).length === 0);
    await publish('1.5.0');
    expect(await versions()).toEqual(['1.0.0', '1.4.0', '1.5.0']);
    expect(await t.registry.domain.blobs.list()).not.toContain(uniqueBlob('1.1.0'));
  });
});

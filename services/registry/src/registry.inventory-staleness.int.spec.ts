import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { encode, subjects } from '@changeover/contracts';
import { waitFor } from '@changeover/test-kit';
import { fuzzInventory, heartbeatReport, helloReport } from './testing/fuzz.setup.js';
import { inventoryChanges, startTestRegistry, TEST_AUTH_HEADER, type TestRegistry } from './testing/registry.fixtures.js';

// A heartbeat claiming another inventory digest than the stored one marks the stored inventory stale
// (an inventory report got lost) until the node's next inventory or hello brings it up to date.
let t: TestRegistry;

beforeAll(async () => {
  t = await startTestRegistry();
});

afterAll(async () => {
  await t?.stop();
});

const status = async (nodeId: string) => {
  const res = await fetch(`${t.baseUrl}/nodes/${nodeId}/inventory`, { headers: TEST_AUTH_HEADER });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};
const reports = (report: string) => t.registry.domain.counters.get('registry_agent_reports_total', { report });
const turnedStale = () => t.registry.domain.counters.get('registry_inventories_turned_stale_total');

async function heartbeat(nodeId: string, inventoryDigest: string): Promise<void> {
  const seen = reports('heartbeat');
  t.nc.publish(subjects.agent(nodeId, 'heartbeat'), encode({ ...heartbeatReport(nodeId), inventoryDigest }));
  await waitFor('heartbeat buffered', () => reports('heartbeat') > seen);
  await t.registry.domain.nodes.flushHeartbeats();
}

describe('inventory staleness from heartbeat digests', () => {
  const before = fuzzInventory(['fz']);
  const after = fuzzInventory(['fz', 'billing']);

  it('marks the stored inventory stale when a heartbeat claims another digest, once per transition', async () => {
    t.nc.publish(subjects.agent('s-1', 'hello'), encode({ ...helloReport('s-1'), inventory: before }));
    await waitFor('hello stored', () => reports('hello') === 1);
    expect((await status('s-1')).body).toMatchObject({ nodeId: 's-1', inventoryDigest: before.digest, reportedDigest: before.digest, stale: false });

    await heartbeat('s-1', before.digest);
    expect((await status('s-1')).body['stale']).toBe(false);
    expect(turnedStale()).toBe(0);

    await heartbeat('s-1', after.digest);
    expect((await status('s-1')).body).toMatchObject({ inventoryDigest: before.digest, reportedDigest: after.digest, stale: true });
    expect(turnedStale()).toBe(1);
    await heartbeat('s-1', after.digest);
    expect(turnedStale()).toBe(1);
  });

  it('clears the mark when the node reports the inventory it claims', async () => {
    t.nc.publish(subjects.agent('s-1', 'inventory'), encode({ nodeId: 's-1', at: new Date().toISOString(), inventory: after }));
    await waitFor('inventory stored', () => reports('inventory') === 1);
    expect((await status('s-1')).body).toMatchObject({ inventoryDigest: after.digest, reportedDigest: after.digest, stale: false, inventory: after });
    await heartbeat('s-1', after.digest);
    expect((await status('s-1')).body['stale']).toBe(false);
    expect((await t.registry.events.readStream('node-s-1')).map((e) => e.type)).toEqual(['node.enrolled']);
    expect((await inventoryChanges(t, 's-1')).map((c) => c.inventoryDigest)).toEqual([before.digest, after.digest]);
  });

  it('answers an unknown or malformed node id with a typed 404 / 400', async () => {
    expect(await status('nobody')).toMatchObject({ status: 404, body: { code: 'NOT_FOUND' } });
    expect(await status('bad%20id')).toMatchObject({ status: 400, body: { code: 'VALIDATION_FAILED' } });
  });
});

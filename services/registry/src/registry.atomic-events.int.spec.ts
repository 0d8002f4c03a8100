import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { encode, subjects, type HelloReport, type Inventory } from '@changeover/contracts';
import { waitFor } from '@changeover/test-kit';
import { buildPackage, helloReport, inventoryChanges, inventoryOf, publishRequest, sign, startTestRegistry, storeSnapshot, TEST_AUTH_HEADER, type TestRegistry } from './testing/registry.fixtures.js';

// Every registry row and its event commit in one transaction: a failing event append leaves neither.
// The failure is forced in Postgres itself: a trigger refuses event rows whose data mentions "boom".
let t: TestRegistry;

beforeAll(async () => {
  t = await startTestRegistry();
  await t.registry.db.query(`CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF NEW.data::text LIKE '%boom%' THEN RAISE EXCEPTION 'forced event append failure'; END IF; RETURN NEW; END $$`);
  await t.registry.db.query('CREATE TRIGGER refuse_boom BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_boom()');
});

afterAll(async () => {
  await t?.stop();
});

const post = (path: string, body: unknown, method = 'POST') => fetch(`${t.baseUrl}${path}`, { method, headers: { ...TEST_AUTH_HEADER, 'content-type': 'application/json' }, body: JSON.stringify(body) });
const failures = () => t.registry.domain.counters.get('registry_event_append_failures_total');
const streamTypes = async (streamId: string) => (await t.registry.events.readStream(streamId)).map((e) => e.type);
/** The inventory digests the events record for a node, oldest first. */
const changes = async (nodeId: string) => (await inventoryChanges(t, nodeId)).map((c) => c.inventoryDigest);

/** Packages by name, each at 1.0.0. */
const inventory = (names: string[]): Inventory => inventoryOf(...names.map((n) => `${n}@1.0.0`));
const hello = (nodeId: string, inv = inventory([])): HelloReport => helloReport(nodeId, inv, { characteristics: { arch: 'x86_64', os: 'linux', memoryMb: 1024, labels: {} }, clusterVersions: { min: 1, max: 1 } });

describe('registry rows and events are written in one transaction', () => {
  it('a normal publish leaves both the row and its package.published event', async () => {
    const pkg = buildPackage('ledger', '1.0.0', [{ name: 'app', content: 'ledger app' }]);
    const res = await post('/packages', publishRequest(sign(pkg), pkg.blobs));
    expect(res.status).toBe(201);
    expect((await storeSnapshot(t)).packages).toEqual([expect.stringMatching(/^ledger@1\.0\.0#/)]);
    expect(await streamTypes('package-ledger')).toEqual(['package.published']);
  });

  it('a publish whose event append fails stores neither the row, nor the blob, nor the event', async () => {
    const before = await storeSnapshot(t);
    const failed = failures();
    const pkg = buildPackage('boom', '1.0.0', [{ name: 'app', content: 'boom app' }]);
    const res = await post('/packages', publishRequest(sign(pkg), pkg.blobs));
    expect(res.status).toBe(500);
    expect(await res.json()).toMatchObject({ code: 'INTERNAL' });
    expect(await storeSnapshot(t)).toEqual(before);
    expect(await streamTypes('package-boom')).toEqual([]);
    expect(failures()).toBe(failed + 1);
  });

  it('enrolment, class changes and hello roll back with their failed event', async () => {
    const before = await storeSnapshot(t);
    const enroll = await post('/nodes', { nodeId: 'n-boom', classId: 'web', processorType: 'x86_64', characteristics: { arch: 'x86_64', os: 'linux', memoryMb: 512, labels: {} } });
    expect(enroll.status).toBe(500);
    const klass = await post('/classes/boom-class', { packages: [], description: 'x' }, 'PUT');
    expect(klass.status).toBe(500);
    const failed = failures();
    t.nc.publish(subjects.agent('n-boom2', 'hello'), encode(hello('n-boom2')));
    await waitFor('the hello append failure counted', () => failures() > failed);
    expect(await storeSnapshot(t)).toEqual(before);
    for (const s of ['node-n-boom', 'class-boom-class', 'node-n-boom2']) expect(await streamTypes(s)).toEqual([]);
  });

  it('an inventory whose event fails keeps the old inventory; a good one stores row and event together', async () => {
    t.nc.publish(subjects.agent('n-1', 'hello'), encode(hello('n-1')));
    await waitFor('n-1 enrolled with its events', async () => (await streamTypes('node-n-1')).length === 1);
    expect(await streamTypes('node-n-1')).toEqual(['node.enrolled']);
    expect(await changes('n-1')).toEqual([inventory([]).digest]);

    const failed = failures();
    const bad = inventory(['boom']);
    t.nc.publish(subjects.agent('n-1', 'inventory'), encode({ nodeId: 'n-1', at: new Date().toISOString(), inventory: bad }));
    await waitFor('the inventory append failure counted', () => failures() > failed);
    expect((await t.registry.domain.nodes.get('n-1')).inventory?.digest).toBe(inventory([]).digest);

    const good = inventory(['ledger']);
    t.nc.publish(subjects.agent('n-1', 'inventory'), encode({ nodeId: 'n-1', at: new Date().toISOString(), inventory: good }));
    // The row and its event are one commit: as soon as the row shows the digest, the event is there too.
    await waitFor('inventory stored', async () => (await t.registry.domain.nodes.get('n-1')).inventory?.digest === good.digest);
    expect(await changes('n-1')).toEqual([inventory([]).digest, good.digest]);
  });

  it('the stale sweep marks nodes and appends node.went-stale in one transaction', async () => {
    const later = new Date(Date.now() + 3_600_000);
    expect(await t.registry.domain.nodes.sweep(later)).toEqual(['n-1']);
    expect((await t.registry.domain.nodes.get('n-1', later)).status).toBe('stale');
    expect((await streamTypes('node-n-1')).at(-1)).toBe('node.went-stale');
  });

  it('inventory reports gathered into one write: a failing or unknown one is refused alone, the others are stored with their events', async () => {
    for (const id of ['n-2', 'n-3']) t.nc.publish(subjects.agent(id, 'hello'), encode(hello(id)));
    await waitFor('n-2 and n-3 enrolled', async () => (await changes('n-2')).length === 1 && (await changes('n-3')).length === 1);
    const nodes = t.registry.domain.nodes;
    const report = (nodeId: string, inv: Inventory) => ({ nodeId, at: new Date().toISOString(), inventory: inv });
    const good = inventory(['ledger']);
    // Same tick: gathered into one batch.
    const outcomes = await Promise.allSettled([
      nodes.inventory('n-2', report('n-2', inventory(['boom']))),
      nodes.inventory('n-3', report('n-3', good)),
      nodes.inventory('n-3', report('n-3', good)),
      nodes.inventory('n-404', report('n-404', good)),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'fulfilled', 'fulfilled', 'rejected']);
    expect((outcomes[3] as PromiseRejectedResult).reason).toMatchObject({ code: 'NOT_FOUND' });
    expect((await nodes.get('n-2')).inventory?.digest).toBe(inventory([]).digest);
    expect(await streamTypes('node-n-2')).toEqual(['node.enrolled']);
    expect(await changes('n-2')).toEqual([inventory([]).digest]);
    expect((await nodes.get('n-3')).inventory?.digest).toBe(good.digest);
    expect(await changes('n-3')).toEqual([inventory([]).digest, good.digest]);

    // A batch with nothing wrong in it: every row and event written together, both nodes in one event.
    const next = inventory(['ledger', 'web']);
    const before = (await t.registry.events.readStream('inventories')).length;
    await Promise.all(['n-2', 'n-3'].map((id) => nodes.inventory(id, report(id, next))));
    const added = (await t.registry.events.readStream('inventories')).slice(before);
    expect(added.map((e) => e.data)).toEqual([{ nodes: [{ nodeId: 'n-2', inventory: 0 }, { nodeId: 'n-3', inventory: 0 }], inventories: [{ inventoryDigest: next.digest, packages: ['ledger@1.0.0', 'web@1.0.0'] }], at: expect.any(String) }]);
    for (const id of ['n-2', 'n-3']) {
      expect((await nodes.get(id)).inventory?.digest).toBe(next.digest);
      expect((await changes(id)).at(-1)).toBe(next.digest);
    }

    // Different inventories in one write: each node keeps its own, and the event lists each once.
    const left = inventory(['ledger', 'web', 'cache']);
    const right = inventory(['billing']);
    const from = (await t.registry.events.readStream('inventories')).length;
    await Promise.all([nodes.inventory('n-1', report('n-1', right)), nodes.inventory('n-2', report('n-2', left)), nodes.inventory('n-3', report('n-3', right))]);
    expect((await nodes.get('n-1')).inventory).toEqual(right);
    expect((await nodes.get('n-2')).inventory).toEqual(left);
    expect((await nodes.get('n-3')).inventory).toEqual(right);
    const [mixed, ...none] = (await t.registry.events.readStream('inventories')).slice(from);
    expect(none).toEqual([]);
    expect((mixed!.data as { inventories: unknown[] }).inventories).toHaveLength(2);
    for (const id of ['n-1', 'n-2', 'n-3']) expect((await changes(id)).at(-1)).toBe((await nodes.get(id)).inventory!.digest);
  });
});

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { encode, eventSubject, ListNodesReply, STREAMS, subjects, toCloudEvent } from '@changeover/contracts';
import { waitFor } from '@changeover/test-kit';
import { helloReport, inventoryChanges, inventoryOf, startTestRegistry, type TestRegistry } from '../testing/registry.fixtures.js';
import { INVENTORIES_DURABLE } from './rollout-inventories.js';

jest.setTimeout(60_000);

const inventory = (version: string) => inventoryOf(`billing@${version}`);
const hello = (nodeId: string) => helloReport(nodeId, inventory('1.0.0'));

describe('inventories from rollout events on real NATS and Postgres', () => {
  let t: TestRegistry;
  let position = 0;
  const at = () => new Date().toISOString();

  /** Publishes one event to CHANGEOVER_EVENTS as the outbox relay does. */
  const publish = async (type: string, data: unknown) => {
    const ce = toCloudEvent({ id: randomUUID(), type, streamId: 'rollout-r-1', globalPosition: ++position, data, createdAt: new Date() });
    return (await jetstream(t.nc).publish(eventSubject(type), JSON.stringify(ce))).seq;
  };
  /** Waits until the registry's consumer has acknowledged the stream up to `seq`. */
  const handled = (seq: number) =>
    waitFor(`event ${seq} handled`, async () => (await (await jetstreamManager(t.nc)).consumers.info(STREAMS.events, INVENTORIES_DURABLE)).ack_floor.stream_seq >= seq);
  const digestOfNode = async (nodeId: string) => (await t.rpc('list-nodes', { nodeIds: [nodeId] }, ListNodesReply)).nodes[0]?.inventory?.digest;
  const counted = (outcome: string) => t.registry.domain.counters.get('registry_rollout_inventories_total', { outcome });

  beforeAll(async () => {
    t = await startTestRegistry();
    for (const n of ['n-1', 'n-2', 'n-3']) t.nc.publish(subjects.agent(n, 'hello'), encode(hello(n)));
    await waitFor('nodes enrolled', async () => (await t.rpc('list-nodes', { nodeIds: ['n-1', 'n-2', 'n-3'] }, ListNodesReply)).nodes.length === 3);
    await waitFor('the consumer exists', async () => (await jetstreamManager(t.nc)).consumers.info(STREAMS.events, INVENTORIES_DURABLE).then(() => true, () => false));
  });

  afterAll(async () => {
    await t.stop();
  });

  it('stores the inventories of a completion batch in one write, counting nodes that are not enrolled', async () => {
    const v2 = inventory('2.0.0');
    const v3 = inventory('3.0.0');
    const seq = await publish('rollout.nodes-completed', {
      rolloutId: 'r-1',
      nodes: [
        { nodeId: 'n-1', inventory: 0, bytesFetched: 10 },
        { nodeId: 'n-2', inventory: 1, bytesFetched: 0 },
        { nodeId: 'n-ghost', inventory: 0, bytesFetched: 0 },
      ],
      inventories: [v2, v3],
      at: at(),
    });
    await handled(seq);
    expect([await digestOfNode('n-1'), await digestOfNode('n-2'), await digestOfNode('n-3')]).toEqual([v2.digest, v3.digest, inventory('1.0.0').digest]);
    expect(await digestOfNode('n-ghost')).toBeUndefined();
    expect(counted('stored')).toBe(2);
    expect(counted('not_enrolled')).toBe(1);
    // Other systems hear of it as the registry's own inventory events.
    expect((await inventoryChanges(t, 'n-1')).map((c) => c.packages)).toEqual([['billing@1.0.0'], ['billing@2.0.0']]);
  });

  it('takes a regression with its inventory, in stream order after the completion, and leaves others alone', async () => {
    const v4 = inventory('4.0.0');
    const back = inventory('1.5.0');
    await publish('rollout.nodes-completed', { rolloutId: 'r-1', nodes: [{ nodeId: 'n-3', inventory: 0, bytesFetched: 0 }], inventories: [v4], at: at() });
    await publish('rollout.proposed', { rolloutId: 'r-1', attempt: 0, nodes: 3, dryRun: false, at: at() });
    const seq = await publish('rollout.node-regressed', { rolloutId: 'r-1', nodeId: 'n-3', inventory: back, at: at() });
    await handled(seq);
    expect(await digestOfNode('n-3')).toBe(back.digest);
    // A regression event of an earlier version carries no inventory: nothing is stored for it.
    const stored = counted('stored');
    await handled(await publish('rollout.node-regressed', { rolloutId: 'r-1', nodeId: 'n-3', at: at() }));
    expect(await digestOfNode('n-3')).toBe(back.digest);
    expect(counted('stored')).toBe(stored);
  });

  it('counts and skips a malformed event, and goes on with the next one', async () => {
    const v5 = inventory('5.0.0');
    await publish('rollout.nodes-completed', { rolloutId: 'r-1', nodes: [{ nodeId: 'n-1', inventory: 0 }], inventories: [{ active: 'no' }], at: at() });
    await jetstream(t.nc).publish(eventSubject('rollout.nodes-completed'), 'not json');
    const seq = await publish('rollout.nodes-completed', { rolloutId: 'r-1', nodes: [{ nodeId: 'n-1', inventory: 0, bytesFetched: 0 }], inventories: [v5], at: at() });
    await handled(seq);
    expect(await digestOfNode('n-1')).toBe(v5.digest);
    expect(counted('invalid')).toBe(2);
  });

  it('no longer takes inventories from the agents’ progress reports: the rollout service records them', async () => {
    const before = await digestOfNode('n-2');
    t.nc.publish(subjects.agent('n-2', 'progress'), encode({ nodeId: 'n-2', rolloutId: 'r-1', attempt: 0, phase: 'completed', inventory: inventory('9.9.9') }));
    // A hello sent after it on the same connection is handled after it: once the hello is stored, a
    // taken progress report would be pending, and the flush writes whatever is.
    t.nc.publish(subjects.agent('n-1', 'hello'), encode({ ...hello('n-1'), inventory: inventory('6.0.0') }));
    await waitFor('hello stored', async () => (await digestOfNode('n-1')) === inventory('6.0.0').digest);
    await t.registry.domain.nodes.flushInventories();
    expect(await digestOfNode('n-2')).toBe(before);
  });
});

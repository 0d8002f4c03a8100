import { describe, expect, it } from '@jest/globals';
import { EVENT_SCHEMAS, NODE_LIST_CHUNK } from '@changeover/contracts';
import { INVENTORY_EVENT_BUDGET, inventoryChangeEvents, type InventoryChange } from './inventory-events.js';

const at = new Date('2026-11-23T10:00:00.000Z');
const inv = (digestChar: string, ...packages: string[]): InventoryChange['inventory'] => ({
  digest: `sha256:${digestChar.repeat(64)}`,
  active: packages.map((p) => ({ name: p.split('@')[0]!, version: p.split('@')[1]! })) as InventoryChange['inventory']['active'],
});

/** Each node's digest as the events say it, in order. */
const unfold = (events: ReturnType<typeof inventoryChangeEvents>) => events.flatMap((e) => e.data.nodes.map((n) => [n.nodeId, e.data.inventories[n.inventory]!.inventoryDigest]));

describe('inventoryChangeEvents', () => {
  it('lists each distinct inventory once, with its packages sorted, and keeps the order of the changes', () => {
    const a = inv('a', 'web@2.0.0', 'billing@1.0.0');
    const b = inv('b', 'web@1.0.0');
    const events = inventoryChangeEvents([{ nodeId: 'n1', inventory: a }, { nodeId: 'n2', inventory: b }, { nodeId: 'n3', inventory: a }], at);
    expect(events).toEqual([
      {
        streamId: 'inventories',
        type: 'node.inventories-changed',
        data: {
          nodes: [{ nodeId: 'n1', inventory: 0 }, { nodeId: 'n2', inventory: 1 }, { nodeId: 'n3', inventory: 0 }],
          inventories: [{ inventoryDigest: a.digest, packages: ['billing@1.0.0', 'web@2.0.0'] }, { inventoryDigest: b.digest, packages: ['web@1.0.0'] }],
          at: at.toISOString(),
        },
      },
    ]);
  });

  it('makes no event of no change', () => {
    expect(inventoryChangeEvents([], at)).toEqual([]);
  });

  it(`splits at ${NODE_LIST_CHUNK} nodes, each part listing the inventories its nodes use`, () => {
    const a = inv('a', 'web@2.0.0');
    const changes = Array.from({ length: NODE_LIST_CHUNK * 2 + 1 }, (_, i) => ({ nodeId: `n${i}`, inventory: a }));
    const events = inventoryChangeEvents(changes, at);
    expect(events.map((e) => e.data.nodes.length)).toEqual([NODE_LIST_CHUNK, NODE_LIST_CHUNK, 1]);
    for (const e of events) expect(e.data.inventories).toEqual([{ inventoryDigest: a.digest, packages: ['web@2.0.0'] }]);
    expect(unfold(events)).toEqual(changes.map((c) => [c.nodeId, a.digest]));
  });

  it('stays within the size budget when inventories are large, and every event passes its schema', () => {
    // 300 distinct inventories of 100 packages each: several KiB apiece.
    const changes = Array.from({ length: 300 }, (_, i) => ({
      nodeId: `node-${i}`,
      inventory: { digest: `sha256:${i.toString(16).padStart(64, '0')}`, active: Array.from({ length: 100 }, (_, k) => ({ name: `package-with-a-long-name-${k}`, version: `${i}.0.${k}` })) } as InventoryChange['inventory'],
    }));
    const events = inventoryChangeEvents(changes, at);
    expect(events.length).toBeGreaterThan(1);
    for (const e of events) {
      expect(JSON.stringify(e.data).length).toBeLessThanOrEqual(INVENTORY_EVENT_BUDGET);
      expect(EVENT_SCHEMAS['node.inventories-changed'].safeParse(e.data).success).toBe(true);
    }
    expect(unfold(events)).toEqual(changes.map((c) => [c.nodeId, c.inventory.digest]));
  });
});

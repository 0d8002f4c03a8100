import { NODE_LIST_CHUNK, type ChangedInventory, type ChangedInventoryNode, type Inventory } from '@changeover/contracts';
import { RegistryEvents, streams, type RegistryEvent } from '../events/registry.events.js';
import { inventoryPackageIds } from './node.status.js';

/** A node whose stored inventory digest changed in this write. */
export interface InventoryChange {
  nodeId: string;
  inventory: Pick<Inventory, 'digest' | 'active'>;
}

/** Characters of JSON one `node.inventories-changed` event grows to at most (the event store takes 512 KiB). */
export const INVENTORY_EVENT_BUDGET = 256 * 1024;

/**
 * The `node.inventories-changed` events of one write, in the order of `changes`: each names at most
 * NODE_LIST_CHUNK nodes and stays within INVENTORY_EVENT_BUDGET characters, and lists each distinct
 * inventory (by digest) once, which its nodes index. A wave of 10,000 nodes moving to the same
 * packages is two events instead of 10,000.
 */
export function inventoryChangeEvents(changes: readonly InventoryChange[], at: Date): RegistryEvent<'node.inventories-changed'>[] {
  const out: RegistryEvent<'node.inventories-changed'>[] = [];
  let nodes: ChangedInventoryNode[] = [];
  let inventories: ChangedInventory[] = [];
  let index = new Map<string, number>();
  let size = 0;
  const close = () => {
    if (nodes.length) out.push(RegistryEvents.event(streams.nodeInventories, 'node.inventories-changed', { nodes, inventories, at: at.toISOString() }));
    nodes = [];
    inventories = [];
    index = new Map();
    size = 0;
  };
  // {"nodeId":"…","inventory":1234}, and for an inventory the event does not list yet its own entry.
  const entry = (digest: string, active: InventoryChange['inventory']['active']): ChangedInventory => ({ inventoryDigest: digest, packages: inventoryPackageIds(active) });
  for (const c of changes) {
    let listed = index.has(c.inventory.digest) ? undefined : entry(c.inventory.digest, c.inventory.active);
    let grows = c.nodeId.length + 30 + (listed ? JSON.stringify(listed).length + 1 : 0);
    if (nodes.length && (nodes.length === NODE_LIST_CHUNK || size + grows > INVENTORY_EVENT_BUDGET)) {
      close();
      // The next event lists the inventory again.
      listed ??= entry(c.inventory.digest, c.inventory.active);
      grows = c.nodeId.length + 30 + JSON.stringify(listed).length + 1;
    }
    let i = index.get(c.inventory.digest);
    if (i === undefined) {
      i = inventories.push(listed!) - 1;
      index.set(c.inventory.digest, i);
    }
    nodes.push({ nodeId: c.nodeId, inventory: i });
    size += grows;
  }
  close();
  return out;
}

import type { Sql, SqlPool, Tx } from '../db/sql.js';
import type { Characteristics, EnrollNodeRequest, Inventory, NodeRecord, NodeStatus, VersionRange } from '@changeover/contracts';
import { nodeStatus } from './node.status.js';

export interface NodeRowData {
  node_id: string;
  class_id: string;
  processor_type: 'x86_64' | 'arm64';
  characteristics: Characteristics;
  enrolled_at: Date;
  last_heartbeat_at: Date | null;
  stale: boolean;
  agent_version: string | null;
  cluster_versions: VersionRange | null;
  inventory: Inventory | null;
  inventory_digest: string | null;
  /** The digest the node last claimed (heartbeat, hello or inventory); differs from inventory_digest when the stored inventory is stale. */
  reported_inventory_digest: string | null;
  phase: string | null;
  decommissioned_at: Date | null;
}

export interface HeartbeatUpdate {
  nodeId: string;
  at: Date;
  agentVersion: string;
  clusterVersions: VersionRange;
  phase: string;
  inventoryDigest: string;
}

export interface NodeFilter {
  classId?: string;
  status?: NodeStatus;
  label?: string;
  nodeIds?: string[];
  limit: number;
  after?: string;
}

/**
 * A node as module selection sees it. The characteristics come as jsonb's text, which is the same
 * for equal values: nodes alike (most of a fleet) share one parse and one selection.
 */
export interface SelectableRow {
  node_id: string;
  class_id: string;
  processor_type: 'x86_64' | 'arm64';
  characteristics_json: string;
}
const SELECTABLE = 'node_id, class_id, processor_type, characteristics::text AS characteristics_json';

const statusSql = (threshold: string) => `CASE WHEN decommissioned_at IS NOT NULL THEN 'decommissioned' WHEN last_heartbeat_at > ${threshold}::timestamptz THEN 'active' ELSE 'stale' END`;

/** Plain SQL over registry_nodes: heartbeats arrive by the thousand, so updates are batched. */
export class NodeRepository {
  constructor(private readonly db: SqlPool) {}

  transaction<T>(work: (m: Tx) => Promise<T>): Promise<T> {
    return this.db.transaction(work);
  }

  async lock(m: Sql, nodeId: string): Promise<NodeRowData | null> {
    const [row] = await m.query<NodeRowData>('SELECT * FROM registry_nodes WHERE node_id = $1 FOR UPDATE', [nodeId]);
    return row ?? null;
  }

  async insert(m: Sql, n: EnrollNodeRequest, now: Date): Promise<void> {
    await m.query(
      `INSERT INTO registry_nodes (node_id, class_id, processor_type, characteristics, enrolled_at, stale) VALUES ($1, $2, $3, $4, $5, true)`,
      [n.nodeId, n.classId, n.processorType, JSON.stringify(n.characteristics), now],
    );
    await m.query(`INSERT INTO registry_classes (class_id, updated_at) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [n.classId, now]);
  }

  async updateIdentity(m: Sql, n: EnrollNodeRequest, now: Date): Promise<void> {
    await m.query(`UPDATE registry_nodes SET class_id = $2, processor_type = $3, characteristics = $4, decommissioned_at = NULL WHERE node_id = $1`, [
      n.nodeId,
      n.classId,
      n.processorType,
      JSON.stringify(n.characteristics),
    ]);
    await m.query(`INSERT INTO registry_classes (class_id, updated_at) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [n.classId, now]);
  }

  /** The rows of these nodes, locked in node-id order (as heartbeats and inventories lock them); unknown ones are absent. */
  async lockMany(m: Sql, nodeIds: readonly string[]): Promise<Map<string, NodeRowData>> {
    if (nodeIds.length === 0) return new Map();
    const rows = await m.query<NodeRowData>('SELECT * FROM registry_nodes WHERE node_id = ANY($1::text[]) ORDER BY node_id FOR UPDATE', [nodeIds]);
    return new Map(rows.map((r) => [r.node_id, r]));
  }

  /**
   * `insert` and `updateIdentity` of many hellos in three statements: the new nodes' rows, the
   * known ones' identities, and each class named once.
   */
  async upsertIdentities(m: Sql, fresh: readonly { n: EnrollNodeRequest; now: Date }[], known: readonly EnrollNodeRequest[]): Promise<void> {
    if (fresh.length) {
      const chars = new JsonTexts();
      const c = fresh.map((f) => chars.index(f.n.characteristics));
      await m.query(
        `INSERT INTO registry_nodes (node_id, class_id, processor_type, characteristics, enrolled_at, stale)
         SELECT u.node_id, u.class_id, u.processor_type, $4::jsonb -> u.c, u.at, true
         FROM unnest($1::text[], $2::text[], $3::text[], $5::int[], $6::timestamptz[]) AS u(node_id, class_id, processor_type, c, at)`,
        [fresh.map((f) => f.n.nodeId), fresh.map((f) => f.n.classId), fresh.map((f) => f.n.processorType), chars.json(), c, fresh.map((f) => f.now)],
      );
    }
    if (known.length) {
      const chars = new JsonTexts();
      const c = known.map((n) => chars.index(n.characteristics));
      await m.query(
        `UPDATE registry_nodes n SET class_id = u.class_id, processor_type = u.processor_type, characteristics = $4::jsonb -> u.c, decommissioned_at = NULL
         FROM unnest($1::text[], $2::text[], $3::text[], $5::int[]) AS u(node_id, class_id, processor_type, c) WHERE n.node_id = u.node_id`,
        [known.map((n) => n.nodeId), known.map((n) => n.classId), known.map((n) => n.processorType), chars.json(), c],
      );
    }
    const classes = new Map<string, Date>();
    for (const f of fresh) if (!classes.has(f.n.classId)) classes.set(f.n.classId, f.now);
    const now = fresh[0]?.now ?? new Date();
    for (const n of known) if (!classes.has(n.classId)) classes.set(n.classId, now);
    if (classes.size) {
      await m.query(`INSERT INTO registry_classes (class_id, updated_at) SELECT * FROM unnest($1::text[], $2::timestamptz[]) ON CONFLICT DO NOTHING`, [[...classes.keys()], [...classes.values()]]);
    }
  }

  /** `recordHello` of many nodes in one UPDATE; each distinct inventory and cluster-version range is sent once. */
  async recordHellos(m: Sql, hellos: readonly { nodeId: string; at: Date; agentVersion: string; clusterVersions: VersionRange; inventory: Inventory }[]): Promise<void> {
    if (hellos.length === 0) return;
    const ranges = new JsonTexts();
    const inventories = new JsonTexts();
    const cv = hellos.map((h) => ranges.index(h.clusterVersions));
    const inv = hellos.map((h) => inventories.index(h.inventory));
    await m.query(
      `UPDATE registry_nodes n SET last_heartbeat_at = u.at, stale = false, agent_version = u.agent_version, cluster_versions = $5::jsonb -> u.cv,
         inventory = $7::jsonb -> u.inv, inventory_digest = u.digest, reported_inventory_digest = u.digest, phase = 'idle'
       FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::int[], $6::int[], $8::text[]) AS u(node_id, at, agent_version, cv, inv, digest)
       WHERE n.node_id = u.node_id`,
      [hellos.map((h) => h.nodeId), hellos.map((h) => h.at), hellos.map((h) => h.agentVersion), cv, ranges.json(), inv, inventories.json(), hellos.map((h) => h.inventory.digest)],
    );
  }

  async recordHello(m: Sql, nodeId: string, h: { at: Date; agentVersion: string; clusterVersions: VersionRange; inventory: Inventory }): Promise<void> {
    await m.query(
      `UPDATE registry_nodes SET last_heartbeat_at = $2, stale = false, agent_version = $3, cluster_versions = $4, inventory = $5, inventory_digest = $6, reported_inventory_digest = $6, phase = 'idle' WHERE node_id = $1`,
      [nodeId, h.at, h.agentVersion, JSON.stringify(h.clusterVersions), JSON.stringify(h.inventory), h.inventory.digest],
    );
  }

  /**
   * Stores a batch of inventory reports in one UPDATE (rows locked in node-id order, as heartbeats
   * lock them); returns, per known node, the digest each replaced. Unknown nodes are absent.
   */
  async recordInventories(m: Sql, batch: readonly { nodeId: string; inventory: Inventory }[]): Promise<Map<string, string | null>> {
    if (batch.length === 0) return new Map();
    const sorted = [...batch].sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));
    // Each distinct inventory (by its JSON text) goes once, and every node names it by position: a wave
    // of 2,000 nodes on the same packages sends one inventory, not 2,000, and Postgres parses one small
    // document instead of a 2,000-row recordset (its CPU for the write drops about five-fold).
    // Reports share equal inventory objects (NodeService interns them): each object is written out once.
    const byObject = new Map<Inventory, number>();
    const texts = new Map<string, number>();
    const at: number[] = [];
    for (const b of sorted) {
      let i = byObject.get(b.inventory);
      if (i === undefined) {
        const text = JSON.stringify(b.inventory);
        i = texts.get(text);
        if (i === undefined) texts.set(text, (i = texts.size));
        byObject.set(b.inventory, i);
      }
      at.push(i);
    }
    const rows = await m.query<{ node_id: string; old: string | null }>(
      `WITH d AS (SELECT $3::jsonb AS inventories),
            v AS (SELECT u.node_id, d.inventories -> u.i AS inventory FROM d, unnest($1::text[], $2::int[]) AS u(node_id, i)),
            o AS (SELECT n.node_id, n.inventory_digest AS old FROM registry_nodes n WHERE n.node_id = ANY($1::text[]) ORDER BY n.node_id FOR UPDATE)
       UPDATE registry_nodes n SET inventory = v.inventory, inventory_digest = v.inventory ->> 'digest', reported_inventory_digest = v.inventory ->> 'digest'
       FROM v JOIN o USING (node_id) WHERE n.node_id = v.node_id
       RETURNING n.node_id, o.old`,
      [sorted.map((b) => b.nodeId), at, `[${[...texts.keys()].join(',')}]`],
    );
    return new Map(rows.map((r) => [r.node_id, r.old]));
  }

  /** Stores an inventory report; returns the digest it replaced (undefined when the node is unknown). */
  async recordInventory(m: Sql, nodeId: string, inventory: Inventory): Promise<string | null | undefined> {
    const rows = await m.query<{ old: string | null }>(
      `UPDATE registry_nodes n SET inventory = $2, inventory_digest = $3, reported_inventory_digest = $3 FROM (SELECT node_id, inventory_digest AS old FROM registry_nodes WHERE node_id = $1 FOR UPDATE) o
       WHERE n.node_id = o.node_id RETURNING o.old`,
      [nodeId, JSON.stringify(inventory), inventory.digest],
    );
    return rows.length === 0 ? undefined : rows[0]!.old;
  }

  /**
   * One UPDATE for a batch of heartbeats; returns the ids updated, whether each was stale before, and
   * whether its stored inventory just became stale (the claimed digest now differs, and did not before).
   */
  async applyHeartbeats(m: Sql, batch: readonly HeartbeatUpdate[]): Promise<{ nodeId: string; wasStale: boolean; inventoryTurnedStale: boolean }[]> {
    if (batch.length === 0) return [];
    const sorted = [...batch].sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));
    const rows = await m.query<{ node_id: string; was_stale: boolean; turned: boolean }>(
      `WITH v AS (SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::jsonb[], $5::text[], $6::text[]) AS v(node_id, at, agent_version, cluster_versions, phase, digest)),
            o AS (SELECT n.node_id, n.stale, n.reported_inventory_digest AS reported FROM registry_nodes n WHERE n.node_id = ANY($1::text[]) ORDER BY n.node_id FOR UPDATE)
       UPDATE registry_nodes n SET last_heartbeat_at = GREATEST(v.at, n.last_heartbeat_at), agent_version = v.agent_version, cluster_versions = v.cluster_versions, phase = v.phase, stale = false,
         reported_inventory_digest = v.digest
       FROM v JOIN o USING (node_id) WHERE n.node_id = v.node_id
       RETURNING n.node_id, o.stale AS was_stale, (o.reported IS NOT DISTINCT FROM n.inventory_digest AND v.digest IS DISTINCT FROM n.inventory_digest) AS turned`,
      [sorted.map((h) => h.nodeId), sorted.map((h) => h.at), sorted.map((h) => h.agentVersion), sorted.map((h) => JSON.stringify(h.clusterVersions)), sorted.map((h) => h.phase), sorted.map((h) => h.inventoryDigest)],
    );
    return rows.map((r) => ({ nodeId: r.node_id, wasStale: r.was_stale, inventoryTurnedStale: r.turned }));
  }

  /** Marks nodes whose heartbeat is older than `before` stale; returns those that changed. */
  async markStale(m: Sql, before: Date): Promise<{ nodeId: string; lastHeartbeatAt: Date | null }[]> {
    const rows = await m.query<{ node_id: string; last_heartbeat_at: Date | null }>(
      `UPDATE registry_nodes SET stale = true WHERE NOT stale AND decommissioned_at IS NULL AND (last_heartbeat_at IS NULL OR last_heartbeat_at <= $1)
       RETURNING node_id, last_heartbeat_at`,
      [before],
    );
    return rows.map((r) => ({ nodeId: r.node_id, lastHeartbeatAt: r.last_heartbeat_at }));
  }

  /** What module selection reads of the given nodes (not their inventories). */
  async selectableByIds(ids: readonly string[]): Promise<SelectableRow[]> {
    if (ids.length === 0) return [];
    return this.db.query(`SELECT ${SELECTABLE} FROM registry_nodes WHERE node_id = ANY($1::text[]) AND decommissioned_at IS NULL ORDER BY node_id`, [ids]);
  }

  /** What module selection reads of every node of the given classes (10,000 rows for a big class: no inventories). */
  async selectableByClasses(classIds: readonly string[]): Promise<SelectableRow[]> {
    if (classIds.length === 0) return [];
    return this.db.query(`SELECT ${SELECTABLE} FROM registry_nodes WHERE class_id = ANY($1::text[]) AND decommissioned_at IS NULL ORDER BY node_id`, [classIds]);
  }

  async list(f: NodeFilter, now: Date, staleAfterMs: number): Promise<NodeRowData[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const p = (v: unknown) => `$${params.push(v)}`;
    if (f.classId) where.push(`class_id = ${p(f.classId)}`);
    if (f.status) where.push(`${statusSql(p(new Date(now.getTime() - staleAfterMs)))} = ${p(f.status)}`);
    if (f.label) {
      const [key, value] = f.label.split('=') as [string, string];
      where.push(`characteristics->'labels' @> ${p(JSON.stringify({ [key]: value }))}::jsonb`);
    }
    if (f.nodeIds) where.push(`node_id = ANY(${p(f.nodeIds)}::text[])`);
    if (f.after) where.push(`node_id > ${p(f.after)}`);
    const sql = `SELECT * FROM registry_nodes ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY node_id LIMIT ${p(f.limit + 1)}`;
    return this.db.query(sql, params);
  }

  /**
   * The distinct `api@version` that active nodes (heartbeat after `since`, not decommissioned)
   * outside the excluded classes and nodes provide, for the given API names. Nodes with equal
   * inventories share a digest: the scan groups the fleet by digest (a hash aggregate over the rows)
   * and opens one inventory per distinct digest, so 100,000 nodes on a few configurations expand a
   * few documents, not 100,000.
   */
  async providedApis(q: { names: readonly string[]; excludeClasses: readonly string[]; excludeNodes: readonly string[]; since: Date }): Promise<string[]> {
    if (q.names.length === 0) return [];
    const rows = await this.db.query<{ api: string }>(
      `WITH pick AS (
         SELECT min(node_id) AS node_id FROM registry_nodes
         WHERE decommissioned_at IS NULL AND last_heartbeat_at > $1 AND inventory_digest IS NOT NULL
           AND NOT (class_id = ANY($2::text[])) AND NOT (node_id = ANY($3::text[]))
         GROUP BY inventory_digest)
       SELECT DISTINCT api FROM pick JOIN registry_nodes n USING (node_id),
         jsonb_array_elements(n.inventory -> 'active') AS p, jsonb_array_elements_text(p -> 'provides') AS api
       WHERE split_part(api, '@', 1) = ANY($4::text[])
       ORDER BY api`,
      [q.since, q.excludeClasses, q.excludeNodes, q.names],
    );
    return rows.map((r) => r.api);
  }

  async countByClass(classId: string): Promise<number> {
    const [r] = await this.db.query<{ n: string }>('SELECT count(*) AS n FROM registry_nodes WHERE class_id = $1 AND decommissioned_at IS NULL', [classId]);
    return Number(r?.n ?? 0);
  }
}

export function toNodeRecord(r: NodeRowData, now: Date, staleAfterMs: number): NodeRecord {
  return {
    nodeId: r.node_id,
    classId: r.class_id,
    processorType: r.processor_type,
    characteristics: r.characteristics,
    status: nodeStatus(r.last_heartbeat_at, r.decommissioned_at, now, staleAfterMs),
    lastHeartbeatAt: r.last_heartbeat_at ? new Date(r.last_heartbeat_at).toISOString() : null,
    agentVersion: r.agent_version,
    clusterVersions: r.cluster_versions,
    inventory: r.inventory,
  };
}

/** Distinct JSON values of a batch, each written out once and named by its position (equal objects first by identity, then by text). */
class JsonTexts {
  private readonly byObject = new Map<unknown, number>();
  private readonly texts = new Map<string, number>();

  index(value: unknown): number {
    let i = this.byObject.get(value);
    if (i === undefined) {
      const text = JSON.stringify(value);
      i = this.texts.get(text);
      if (i === undefined) this.texts.set(text, (i = this.texts.size));
      this.byObject.set(value, i);
    }
    return i;
  }

  /** The values as one JSON array, in index order. */
  json(): string {
    return `[${[...this.texts.keys()].join(',')}]`;
  }
}

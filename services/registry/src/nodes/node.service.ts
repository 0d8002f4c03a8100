import { ChangeoverError, JsonInterner, type Inventory, type EnrollNodeRequest, type HeartbeatReport, type HelloReport, type InventoryReport, type ListNodesReply, type ListNodesRequest, type NodeRecord, type ProvidedApisReply, type ProvidedApisRequest } from '@changeover/contracts';
import type { z } from 'zod';
import type { Tx } from '../db/sql.js';
import { RegistryEvents, streams, type RegistryEvent } from '../events/registry.events.js';
import type { Counters, Logger } from '../observability.js';
import { inventoryChangeEvents, type InventoryChange } from './inventory-events.js';
import { toNodeRecord, type HeartbeatUpdate, type NodeRepository } from './node.repository.js';

export interface NodePolicy {
  staleAfterMs: number;
  requireEnrollment: boolean;
}

type ListNodes = z.infer<typeof ListNodesRequest>;

interface PendingInventory {
  report: InventoryReport;
  now: Date;
  waiters: Settle[];
}

/** Hears how a report ended: no argument when it was stored, the error when it was refused. */
export type Settle = (error?: unknown) => void;

/**
 * Inventory reports are gathered this long, or until this many are pending, then written together.
 * Nothing waits on them (a rollout verifies with the inventories its own completions carry), so a
 * wave's reports are a handful of writes, events and relay rounds rather than one every few ms.
 */
const INVENTORY_GATHER_MS = 100;
const INVENTORY_BATCH = 2000;
const HELLO_GATHER_MS = 20;
const HELLO_BATCH = 1000;
/**
 * Hellos written in one transaction at most: a fleet's start gathers tens of thousands while a write
 * runs, and their events (one node.enrolled or node.became-active each) must fit one append.
 */
const HELLO_CHUNK = 2000;

export interface InventoryStatus {
  nodeId: string;
  inventory: Inventory | null;
  inventoryDigest: string | null;
  /** The digest of the node's last heartbeat, hello or inventory report. */
  reportedDigest: string | null;
  /** True when the node claims an inventory the registry has not received (a lost inventory report). */
  stale: boolean;
}

/** Nodes, their enrollment and the reports their agents send (claims 3, 24). */
export class NodeService {
  private pending = new Map<string, HeartbeatUpdate>();
  private flushing: Promise<void> = Promise.resolve();
  private pendingInventories = new Map<string, PendingInventory>();
  private pendingHellos: { hello: HelloReport; now: Date; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private helloTimer: NodeJS.Timeout | null = null;
  private helloFlushing: Promise<void> = Promise.resolve();
  private inventoryTimer: NodeJS.Timeout | null = null;
  private inventoryFlushing: Promise<void> = Promise.resolve();
  /** Equal inventories of many nodes' reports as one object (a wave reports a handful of distinct ones). */
  private readonly inventories = new JsonInterner<Inventory>();

  constructor(
    private readonly repo: NodeRepository,
    private readonly events: RegistryEvents,
    private readonly policy: NodePolicy,
    private readonly counters: Counters,
    private readonly log: Logger,
  ) {}

  /** Enrols a node or updates its identity (idempotent); node.enrolled on first enrolment. */
  async enroll(req: EnrollNodeRequest, now = new Date()): Promise<NodeRecord> {
    await this.repo.transaction(async (m) => {
      const existing = await this.repo.lock(m, req.nodeId);
      if (existing) return this.repo.updateIdentity(m, req, now);
      await this.repo.insert(m, req, now);
      await this.events.appendIn(m, [this.enrolledEvent(req, now)]);
    });
    return this.get(req.nodeId, now);
  }

  /**
   * An agent said hello: unknown nodes are enrolled (unless enrollment is required), the record
   * takes the node's identity, inventory and versions, and counts as a heartbeat.
   */
  hello(subjectNodeId: string, h: HelloReport, now = new Date()): Promise<void> {
    this.sameNode(subjectNodeId, h.nodeId, 'hello');
    // Hellos come in storms (a fleet starting, or reconnecting after an outage): gathered like inventories.
    return new Promise<void>((resolve, reject) => {
      this.pendingHellos.push({ hello: h, now, resolve, reject });
      if (this.pendingHellos.length >= HELLO_BATCH) void this.flushHellos();
      else this.helloTimer ??= setTimeout(() => void this.flushHellos(), HELLO_GATHER_MS);
    });
  }

  /**
   * Writes the gathered hellos, at most HELLO_CHUNK to a transaction, with a few statements per chunk
   * (not a few per hello), and their events in one append per chunk; a refused hello changes nothing
   * and gets its error. If a chunk's transaction fails, each of its hellos is written on its own.
   */
  flushHellos(): Promise<void> {
    const run = async () => {
      if (this.helloTimer) clearTimeout(this.helloTimer);
      this.helloTimer = null;
      // Node-id order, as heartbeats and inventories lock rows; a node's later hello after its earlier one (the sort is stable).
      const batch = this.pendingHellos.splice(0).sort((a, b) => (a.hello.nodeId < b.hello.nodeId ? -1 : a.hello.nodeId > b.hello.nodeId ? 1 : 0));
      for (let i = 0; i < batch.length; i += HELLO_CHUNK) await this.flushHelloChunk(batch.slice(i, i + HELLO_CHUNK));
    };
    this.helloFlushing = this.helloFlushing.then(run, run);
    return this.helloFlushing;
  }

  private async flushHelloChunk(batch: NodeService['pendingHellos']): Promise<void> {
    let outcomes: (Error | null)[];
    try {
      outcomes = await this.repo.transaction(async (m) => {
        const events: RegistryEvent[] = [];
        const changes: InventoryChange[] = [];
        const out = new Map<(typeof batch)[number], Error | null>();
        // A node's second hello in the chunk goes in a second round, after its first is written.
        const rounds: (typeof batch)[] = [];
        const seen = new Map<string, number>();
        for (const b of batch) {
          const round = seen.get(b.hello.nodeId) ?? 0;
          seen.set(b.hello.nodeId, round + 1);
          (rounds[round] ??= []).push(b);
        }
        for (const round of rounds) {
          for (const [b, e] of await this.hellosIn(m, round, events, changes)) out.set(b, e);
        }
        await this.events.appendIn(m, [...events, ...inventoryChangeEvents(changes, latest(batch))]);
        return batch.map((b) => out.get(b) ?? null);
      });
    } catch {
      for (const b of batch) {
        await this.repo.transaction(async (m) => {
          const changes: InventoryChange[] = [];
          const events = await this.helloIn(m, b.hello, b.now, changes);
          await this.events.appendIn(m, [...events, ...inventoryChangeEvents(changes, b.now)]);
        }).then(
          () => {
            this.counters.inc('registry_agent_reports_total', 1, { report: 'hello' });
            b.resolve();
          },
          (e: unknown) => b.reject(e),
        );
      }
      return;
    }
    let stored = 0;
    batch.forEach((b, i) => {
      const e = outcomes[i];
      if (e) return b.reject(e);
      stored++;
      b.resolve();
    });
    this.counters.inc('registry_agent_reports_total', stored, { report: 'hello' });
  }

  /**
   * Hellos of distinct nodes inside a transaction, as `helloIn` writes each: the rows locked at once,
   * each hello decided on its row, then the writes of all accepted ones in a few statements. Returns
   * each refused hello's error (nothing of it is written).
   */
  private async hellosIn(m: Tx, round: NodeService['pendingHellos'], events: RegistryEvent[], changes: InventoryChange[]): Promise<Map<(typeof round)[number], Error>> {
    const existing = await this.repo.lockMany(m, round.map((b) => b.hello.nodeId));
    const refused = new Map<(typeof round)[number], Error>();
    const fresh: { n: HelloReport; now: Date }[] = [];
    const known: HelloReport[] = [];
    const accepted: (typeof round)[number][] = [];
    for (const b of round) {
      const h = b.hello;
      const row = existing.get(h.nodeId);
      if (!row) {
        if (this.policy.requireEnrollment) {
          refused.set(b, this.reject('hello', new ChangeoverError('NOT_FOUND', `node ${h.nodeId} is not enrolled`, { nodeId: h.nodeId })));
          continue;
        }
        fresh.push({ n: h, now: b.now });
        events.push(this.enrolledEvent(h, b.now));
      } else {
        if (this.policy.requireEnrollment && row.class_id !== h.classId) {
          refused.set(b, this.reject('hello', new ChangeoverError('FORBIDDEN', `node ${h.nodeId} is enrolled in class ${row.class_id}, not ${h.classId}`, { nodeId: h.nodeId })));
          continue;
        }
        known.push(h);
        if (row.stale && row.last_heartbeat_at) events.push(RegistryEvents.event(streams.node(h.nodeId), 'node.became-active', { nodeId: h.nodeId, at: b.now.toISOString() }));
      }
      if (row?.inventory_digest !== h.inventory.digest) changes.push({ nodeId: h.nodeId, inventory: h.inventory });
      accepted.push(b);
    }
    await this.repo.upsertIdentities(m, fresh, known);
    await this.repo.recordHellos(m, accepted.map((b) => ({ nodeId: b.hello.nodeId, at: b.now, agentVersion: b.hello.agentVersion, clusterVersions: b.hello.clusterVersions, inventory: b.hello.inventory })));
    return refused;
  }

  /** One hello inside a transaction; returns the events it makes. */
  private async helloIn(m: Tx, h: HelloReport, now: Date, changes: InventoryChange[]): Promise<RegistryEvent[]> {
    const events: RegistryEvent[] = [];
    const existing = await this.repo.lock(m, h.nodeId);
    if (!existing) {
      if (this.policy.requireEnrollment) throw this.reject('hello', new ChangeoverError('NOT_FOUND', `node ${h.nodeId} is not enrolled`, { nodeId: h.nodeId }));
      await this.repo.insert(m, h, now);
      events.push(this.enrolledEvent(h, now));
    } else {
      if (this.policy.requireEnrollment && existing.class_id !== h.classId) {
        throw this.reject('hello', new ChangeoverError('FORBIDDEN', `node ${h.nodeId} is enrolled in class ${existing.class_id}, not ${h.classId}`, { nodeId: h.nodeId }));
      }
      await this.repo.updateIdentity(m, h, now);
      if (existing.stale && existing.last_heartbeat_at) events.push(RegistryEvents.event(streams.node(h.nodeId), 'node.became-active', { nodeId: h.nodeId, at: now.toISOString() }));
    }
    await this.repo.recordHello(m, h.nodeId, { at: now, agentVersion: h.agentVersion, clusterVersions: h.clusterVersions, inventory: h.inventory });
    if (existing?.inventory_digest !== h.inventory.digest) changes.push({ nodeId: h.nodeId, inventory: h.inventory });
    return events;
  }

  /** Heartbeats are buffered and written in one UPDATE per flush (no event per heartbeat). */
  heartbeat(subjectNodeId: string, h: HeartbeatReport, now = new Date()): void {
    this.sameNode(subjectNodeId, h.nodeId, 'heartbeat');
    this.pending.set(h.nodeId, { nodeId: h.nodeId, at: now, agentVersion: h.agentVersion, clusterVersions: h.clusterVersions, phase: h.phase, inventoryDigest: h.inventoryDigest });
    this.counters.inc('registry_agent_reports_total', 1, { report: 'heartbeat' });
  }

  /**
   * Writes buffered heartbeats and the node.became-active events of nodes that were stale in one
   * transaction; unknown senders are counted. A failed flush puts its heartbeats back (newer ones win).
   */
  flushHeartbeats(now = new Date()): Promise<void> {
    const run = async () => {
      const batch = [...this.pending.values()];
      this.pending = new Map();
      if (batch.length === 0) return;
      let updated;
      try {
        updated = await this.repo.transaction(async (m) => {
          const rows = await this.repo.applyHeartbeats(m, batch);
          const revived = rows.filter((u) => u.wasStale);
          await this.events.appendIn(m, revived.map((u) => RegistryEvents.event(streams.node(u.nodeId), 'node.became-active', { nodeId: u.nodeId, at: now.toISOString() })));
          return rows;
        });
      } catch (e) {
        for (const h of batch) if (!this.pending.has(h.nodeId)) this.pending.set(h.nodeId, h);
        throw e;
      }
      const unknown = batch.length - updated.length;
      if (unknown > 0) this.counters.inc('registry_agent_reports_rejected_total', unknown, { report: 'heartbeat', code: 'NOT_FOUND' });
      // The protocol has no "send your inventory" command: the stored one is marked stale until the node's next inventory or hello.
      const turned = updated.filter((u) => u.inventoryTurnedStale).map((u) => u.nodeId);
      if (turned.length > 0) {
        this.counters.inc('registry_inventories_turned_stale_total', turned.length);
        this.log.warn({ nodes: turned.slice(0, 20), count: turned.length }, 'heartbeat inventory digest differs from the stored inventory; marked stale until the node reports it');
      }
    };
    this.flushing = this.flushing.then(run, run);
    return this.flushing;
  }

  /**
   * node.inventories-changed for the nodes whose digest differs from the one on record. Reports are gathered for
   * a few milliseconds and written in one transaction (a wave of 10,000 nodes finishing is a handful
   * of writes, not 10,000); the promise settles when this node's report is stored or refused.
   */
  inventory(subjectNodeId: string, r: InventoryReport, now = new Date()): Promise<void> {
    return new Promise<void>((resolve, reject) => this.takeInventory(subjectNodeId, r, (e) => (e === undefined ? resolve() : reject(e)), now));
  }

  /**
   * `inventory` without a promise: `settle` hears the outcome (nothing for stored, the error for
   * refused). The NATS side takes every report this way, so a wave of 10,000 nodes finishing waits
   * for its batch as 10,000 plain entries, not 10,000 suspended handlers. A report naming another
   * node than its subject throws at once.
   */
  takeInventory(subjectNodeId: string, r: InventoryReport, settle: Settle, now = new Date()): void {
    this.sameNode(subjectNodeId, r.nodeId, 'inventory');
    // Held until the batch is written: the shared equal inventory, not this report's own copy.
    const report = { ...r, inventory: this.inventories.intern(r.inventory.digest, r.inventory) };
    const earlier = this.pendingInventories.get(report.nodeId);
    // A newer report of the same node replaces the older one; both callers learn the outcome.
    this.pendingInventories.set(report.nodeId, { report, now, waiters: earlier ? [...earlier.waiters, settle] : [settle] });
    if (this.pendingInventories.size >= INVENTORY_BATCH) void this.flushInventories();
    else this.inventoryTimer ??= setTimeout(() => void this.flushInventories(), INVENTORY_GATHER_MS);
  }

  private async inventoryAlone(r: InventoryReport, now: Date): Promise<void> {
    await this.repo.transaction(async (m) => {
      const previous = await this.repo.recordInventory(m, r.nodeId, r.inventory);
      if (previous === undefined) throw this.reject('inventory', new ChangeoverError('NOT_FOUND', `node ${r.nodeId} is not enrolled`, { nodeId: r.nodeId }));
      if (previous !== r.inventory.digest) await this.events.appendIn(m, inventoryChangeEvents([{ nodeId: r.nodeId, inventory: r.inventory }], now));
    });
    this.counters.inc('registry_agent_reports_total', 1, { report: 'inventory' });
  }

  /** Writes the gathered inventory reports (also called on shutdown). */
  flushInventories(): Promise<void> {
    const run = async () => {
      if (this.inventoryTimer) clearTimeout(this.inventoryTimer);
      this.inventoryTimer = null;
      const batch = [...this.pendingInventories.values()];
      this.pendingInventories = new Map();
      if (batch.length === 0) return;
      let replaced: Map<string, string | null>;
      try {
        replaced = await this.repo.transaction(async (m) => {
          const old = await this.repo.recordInventories(m, batch.map((b) => ({ nodeId: b.report.nodeId, inventory: b.report.inventory })));
          const changed = batch.filter((b) => old.has(b.report.nodeId) && old.get(b.report.nodeId) !== b.report.inventory.digest);
          await this.events.appendIn(m, inventoryChangeEvents(changed.map((b) => ({ nodeId: b.report.nodeId, inventory: b.report.inventory })), latest(batch)));
          return old;
        });
      } catch {
        // One bad report must not sink the others gathered with it: write each on its own.
        for (const b of batch) {
          await this.inventoryAlone(b.report, b.now).then(
            () => b.waiters.forEach((w) => w()),
            (e: unknown) => b.waiters.forEach((w) => w(e ?? new Error('inventory refused'))),
          );
        }
        return;
      }
      let stored = 0;
      for (const b of batch) {
        if (replaced.has(b.report.nodeId)) {
          stored += b.waiters.length;
          for (const w of b.waiters) w();
        } else {
          const e = this.reject('inventory', new ChangeoverError('NOT_FOUND', `node ${b.report.nodeId} is not enrolled`, { nodeId: b.report.nodeId }));
          for (const w of b.waiters) w(e);
        }
      }
      this.counters.inc('registry_agent_reports_total', stored, { report: 'inventory' });
    };
    this.inventoryFlushing = this.inventoryFlushing.then(run, run);
    return this.inventoryFlushing;
  }

  /**
   * The inventories a rollout recorded for its nodes (`rollout.nodes-completed`, `rollout.node-regressed`),
   * stored in one write with the node.inventories-changed events of those that changed. Resolves with
   * the nodes that are not enrolled (counted, nothing stored for them); a database failure rejects,
   * and nothing of the write is kept.
   */
  async recordRolloutInventories(entries: readonly { nodeId: string; inventory: Inventory }[], now = new Date()): Promise<string[]> {
    if (entries.length === 0) return [];
    const shared = entries.map((e) => ({ nodeId: e.nodeId, inventory: this.inventories.intern(e.inventory.digest, e.inventory) }));
    const replaced = await this.repo.transaction(async (m) => {
      const old = await this.repo.recordInventories(m, shared);
      await this.events.appendIn(m, inventoryChangeEvents(shared.filter((e) => old.has(e.nodeId) && old.get(e.nodeId) !== e.inventory.digest), now));
      return old;
    });
    const unknown = shared.filter((e) => !replaced.has(e.nodeId)).map((e) => e.nodeId);
    this.counters.inc('registry_rollout_inventories_total', shared.length - unknown.length, { outcome: 'stored' });
    if (unknown.length > 0) {
      this.counters.inc('registry_rollout_inventories_total', unknown.length, { outcome: 'not_enrolled' });
      this.log.warn({ nodes: unknown.slice(0, 20), count: unknown.length }, 'a rollout recorded inventories of nodes that are not enrolled: not stored');
    }
    return unknown;
  }

  /** Marks nodes without a recent heartbeat stale; one node.went-stale per transition. */
  async sweep(now = new Date()): Promise<string[]> {
    await this.flushHeartbeats(now);
    const stale = await this.repo.transaction(async (m) => {
      const marked = await this.repo.markStale(m, new Date(now.getTime() - this.policy.staleAfterMs));
      await this.events.appendIn(
        m,
        marked
          .filter((s) => s.lastHeartbeatAt !== null)
          .map((s) => RegistryEvents.event(streams.node(s.nodeId), 'node.went-stale', { nodeId: s.nodeId, lastHeartbeatAt: new Date(s.lastHeartbeatAt!).toISOString(), at: now.toISOString() })),
      );
      return marked;
    });
    return stale.map((s) => s.nodeId);
  }

  /** The stored inventory and whether it is stale (the node's last heartbeat claimed another digest). */
  async inventoryStatus(nodeId: string): Promise<InventoryStatus> {
    const [row] = await this.repo.list({ nodeIds: [nodeId], limit: 1 }, new Date(), this.policy.staleAfterMs);
    if (!row) throw new ChangeoverError('NOT_FOUND', `unknown node ${nodeId}`, { nodeId });
    const reported = row.reported_inventory_digest;
    return { nodeId, inventory: row.inventory, inventoryDigest: row.inventory_digest, reportedDigest: reported, stale: reported !== null && reported !== row.inventory_digest };
  }

  async get(nodeId: string, now = new Date()): Promise<NodeRecord> {
    const [row] = await this.repo.list({ nodeIds: [nodeId], limit: 1 }, now, this.policy.staleAfterMs);
    if (!row) throw new ChangeoverError('NOT_FOUND', `unknown node ${nodeId}`, { nodeId });
    return toNodeRecord(row, now, this.policy.staleAfterMs);
  }

  /** Which versions of the consumed APIs' names the active nodes outside the exclusions provide (claim 10). */
  async providedApis(req: ProvidedApisRequest, now = new Date()): Promise<ProvidedApisReply> {
    const names = [...new Set(req.consumes.map((api) => api.slice(0, api.indexOf('@'))))];
    const provided = await this.repo.providedApis({ names, excludeClasses: req.excludeClasses, excludeNodes: req.excludeNodes, since: new Date(now.getTime() - this.policy.staleAfterMs) });
    return { provided };
  }

  async list(req: ListNodes, now = new Date()): Promise<z.infer<typeof ListNodesReply>> {
    const rows = await this.repo.list(req, now, this.policy.staleAfterMs);
    const more = rows.length > req.limit;
    const page = more ? rows.slice(0, req.limit) : rows;
    return { nodes: page.map((r) => toNodeRecord(r, now, this.policy.staleAfterMs)), next: more ? page[page.length - 1]!.node_id : null };
  }

  private sameNode(subjectNodeId: string, bodyNodeId: string, report: string): void {
    // The subject is what NATS permissions vouch for; a body claiming another node is refused.
    if (subjectNodeId !== bodyNodeId) throw this.reject(report, new ChangeoverError('FORBIDDEN', `${report} on the subject of node ${subjectNodeId} names node ${bodyNodeId}`, { nodeId: subjectNodeId }));
  }

  /** Logs a refused report; the NATS side counts every failed report once (registry_agent_reports_rejected_total). */
  private reject(report: string, e: ChangeoverError): ChangeoverError {
    this.log.warn({ report, code: e.code, reason: e.message }, 'agent report rejected');
    return e;
  }

  private enrolledEvent(n: EnrollNodeRequest, now: Date): RegistryEvent {
    return RegistryEvents.event(streams.node(n.nodeId), 'node.enrolled', { nodeId: n.nodeId, classId: n.classId, processorType: n.processorType, characteristics: n.characteristics, at: now.toISOString() });
  }
}

/** The time of the latest report in a batch: the `at` of the inventory events its write makes. */
const latest = (batch: readonly { now: Date }[]) => new Date(batch.reduce((t, b) => Math.max(t, b.now.getTime()), 0));

import { z } from 'zod';
import { ClassId, GroupId, NodeId, RolloutId } from './ids.js';
import { Characteristics, Digest, MAX, Name, PackageRef, ProcessorType, SelectedPackage, SemVer, SoftwareUpdate, Text, VersionRange } from './domain.js';
import { Inventory, ProgressPhase, Verdict } from './node-protocol.js';
import { RolloutPolicy } from './rollout-api.js';
import { RolloutWindows } from './rollout-controls.js';

const Actor = z.string().min(1).max(MAX.name);

export const Veto = z.strictObject({
  nodeId: NodeId,
  processId: z.string().max(MAX.name),
  module: Name.optional(),
  reason: z.string().max(MAX.name),
  message: Text,
  retryAfterMs: z.number().int().nonnegative().optional(),
});
export type Veto = z.infer<typeof Veto>;

/** One group of nodes that receive the same selection (one message; a class broadcast when `classId`). */
export const Assignment = z.strictObject({
  selectionId: z.string().max(MAX.name),
  packages: z.array(SelectedPackage).max(256),
  nodes: z.array(NodeId).max(MAX.nodesPerMessage),
  classId: ClassId.optional(),
});
export type Assignment = z.infer<typeof Assignment>;

export const Discrepancy = z.strictObject({
  kind: z.enum(['PACKAGE_REQUIREMENT', 'MODULE_DEPENDENCY', 'API_UNPROVIDED']),
  nodeId: NodeId,
  package: z.string().max(MAX.name),
  /** The missing package range, module or API. */
  missing: z.string().max(MAX.name),
  message: Text,
});
export type Discrepancy = z.infer<typeof Discrepancy>;

/**
 * Node lists in rollout events come in parts of at most this many ids, so that no event of a
 * 100,000-node rollout outgrows the event store's per-event limit or a NATS message.
 */
export const NODE_LIST_CHUNK = 5000;

/** Characters of JSON the vetoes a rollout.blocked event lists may take (its counts cover the rest). */
export const BLOCKED_VETOES_BUDGET = 256 * 1024;

/** One node's vote, as `rollout.votes-recorded` carries it: `verdicts` holds its processes' vetoes (a veto's reasons, or those a forced accept overrode), none for a plain accept. */
export const RecordedVote = z.strictObject({ nodeId: NodeId, decision: z.enum(['accept', 'veto']), verdicts: z.array(Verdict).max(MAX.list) });
export type RecordedVote = z.infer<typeof RecordedVote>;

/** One node's completion, as `rollout.nodes-completed` carries it: `inventory` indexes the event's `inventories` (each distinct one listed once). */
export const CompletedNode = z.strictObject({ nodeId: NodeId, inventory: z.number().int().nonnegative().max(NODE_LIST_CHUNK - 1), bytesFetched: z.number().int().nonnegative().default(0) });
export type CompletedNode = z.infer<typeof CompletedNode>;

/** A node whose inventory changed, as `node.inventories-changed` carries it: `inventory` indexes the event's `inventories`. */
export const ChangedInventoryNode = z.strictObject({ nodeId: NodeId, inventory: z.number().int().nonnegative().max(NODE_LIST_CHUNK - 1) });
export type ChangedInventoryNode = z.infer<typeof ChangedInventoryNode>;

/** An inventory as `node.inventories-changed` names it: its digest and its active packages (`name@version`). */
export const ChangedInventory = z.strictObject({ inventoryDigest: Digest, packages: z.array(z.string().max(MAX.name)) });
export type ChangedInventory = z.infer<typeof ChangedInventory>;

/** Every domain event: type → data schema. The type's prefix is its aggregate. */
export const EVENT_SCHEMAS = {
  // rollout aggregate (stream rollout-<id>)
  'rollout.created': z.strictObject({
    rolloutId: RolloutId,
    update: SoftwareUpdate,
    policy: RolloutPolicy,
    assignments: z.array(Assignment).max(100_000),
    unsupported: z.array(z.strictObject({ nodeId: NodeId, package: z.string().max(MAX.name), processorType: ProcessorType })).default([]),
    createdBy: Actor,
    /** A scheduled rollout: proposed at this time, not before. */
    startAt: z.string().optional(),
    /** The maintenance windows of the targeted classes as they were at creation: no wave starts outside them. */
    windows: RolloutWindows.optional(),
    at: z.string(),
  }),
  /** More nodes of selection `selection` of the created rollout (its assignments list them only up to NODE_LIST_CHUNK in all). */
  'rollout.nodes-added': z.strictObject({ rolloutId: RolloutId, selection: z.number().int().nonnegative(), nodes: z.array(NodeId).min(1).max(NODE_LIST_CHUNK), at: z.string() }),
  'rollout.proposed': z.strictObject({ rolloutId: RolloutId, attempt: z.number().int().nonnegative(), nodes: z.number().int().nonnegative(), dryRun: z.boolean().default(false), at: z.string() }),
  'rollout.votes-recorded': z.strictObject({ rolloutId: RolloutId, attempt: z.number().int().nonnegative(), votes: z.array(RecordedVote).min(1).max(NODE_LIST_CHUNK), at: z.string() }),
  'rollout.node-unreachable': z.strictObject({ rolloutId: RolloutId, attempt: z.number().int().nonnegative(), nodeIds: z.array(NodeId).min(1).max(NODE_LIST_CHUNK), treatedAs: z.enum(['veto', 'defer', 'exclude']), at: z.string() }),
  // The first vetoes in node order (at most MAX.list, and BLOCKED_VETOES_BUDGET characters); the counts cover them all.
  'rollout.blocked': z.strictObject({ rolloutId: RolloutId, attempt: z.number().int().nonnegative(), vetoes: z.array(Veto).max(MAX.list), vetoCount: z.number().int().nonnegative(), vetoingNodes: z.number().int().nonnegative(), at: z.string() }),
  'rollout.forced': z.strictObject({ rolloutId: RolloutId, by: Actor, reason: Text, nodes: z.array(NodeId).optional(), at: z.string() }),
  'rollout.revote-requested': z.strictObject({ rolloutId: RolloutId, by: Actor, reason: Text, attempt: z.number().int().nonnegative(), at: z.string() }),
  // `excluded` counts the nodes left out, which the rollout.nodes-excluded events before it name.
  'rollout.nodes-excluded': z.strictObject({ rolloutId: RolloutId, attempt: z.number().int().nonnegative(), nodeIds: z.array(NodeId).min(1).max(NODE_LIST_CHUNK), at: z.string() }),
  'rollout.accepted': z.strictObject({ rolloutId: RolloutId, attempt: z.number().int().nonnegative(), nodes: z.number().int().nonnegative(), excluded: z.number().int().nonnegative(), at: z.string() }),
  /** A wave's nodes in `parts` events (part 0 … parts-1); the wave's commits go out with the last part. */
  'rollout.wave-started': z.strictObject({ rolloutId: RolloutId, wave: z.number().int().nonnegative(), nodes: z.array(NodeId).max(NODE_LIST_CHUNK), part: z.number().int().nonnegative().default(0), parts: z.number().int().positive().default(1), at: z.string() }),
  'rollout.node-progressed': z.strictObject({ rolloutId: RolloutId, nodeId: NodeId, phase: ProgressPhase, bytesFetched: z.number().int().nonnegative().optional(), at: z.string() }),
  'rollout.nodes-completed': z.strictObject({ rolloutId: RolloutId, nodes: z.array(CompletedNode).min(1).max(NODE_LIST_CHUNK), inventories: z.array(Inventory).min(1).max(NODE_LIST_CHUNK), at: z.string() }),
  'rollout.node-failed': z.strictObject({ rolloutId: RolloutId, nodeId: NodeId, code: z.string().max(MAX.name), message: Text, at: z.string() }),
  /** `by`: the operator who paused it (absent when a threshold paused it). */
  'rollout.paused': z.strictObject({ rolloutId: RolloutId, reason: Text, failed: z.number().int().nonnegative(), committed: z.number().int().nonnegative(), by: Actor.optional(), at: z.string() }),
  'rollout.resumed': z.strictObject({ rolloutId: RolloutId, by: Actor, reason: Text.optional(), at: z.string() }),
  /** An operator commits failed or timed-out nodes again, with a new attempt number for them (their agents answer repeats of older ones from their record). */
  'rollout.nodes-retried': z.strictObject({ rolloutId: RolloutId, by: Actor, reason: Text, attempt: z.number().int().positive(), nodeIds: z.array(NodeId).min(1).max(NODE_LIST_CHUNK), at: z.string() }),
  /** No wave may start: the accepted nodes' classes are outside their maintenance windows until `until`. */
  'rollout.window-wait': z.strictObject({ rolloutId: RolloutId, until: z.string(), classes: z.array(ClassId).max(1000), at: z.string() }),
  'rollout.aborted': z.strictObject({ rolloutId: RolloutId, reason: Text, at: z.string() }),
  'rollout.cancelled': z.strictObject({ rolloutId: RolloutId, by: Actor, reason: Text, at: z.string() }),
  'rollout.regress-requested': z.strictObject({ rolloutId: RolloutId, by: Actor, nodes: z.array(NodeId).min(1).max(NODE_LIST_CHUNK), to: z.string().max(MAX.name), reason: Text, at: z.string() }),
  /** `inventory`: what the node runs after the regression, from its report (absent in events of earlier versions). */
  'rollout.node-regressed': z.strictObject({ rolloutId: RolloutId, nodeId: NodeId, inventory: Inventory.optional(), at: z.string() }),
  'rollout.dependency-discrepancy': z.strictObject({ rolloutId: RolloutId, discrepancy: Discrepancy, at: z.string() }),
  'rollout.verified': z.strictObject({ rolloutId: RolloutId, nodes: z.number().int().nonnegative(), discrepancies: z.number().int().nonnegative(), at: z.string() }),
  'rollout.completed': z.strictObject({ rolloutId: RolloutId, nodes: z.number().int().nonnegative(), failed: z.number().int().nonnegative(), at: z.string() }),
  'rollout.failed': z.strictObject({ rolloutId: RolloutId, reason: Text, at: z.string() }),

  // registry aggregates
  'package.published': z.strictObject({ package: PackageRef, digests: z.array(Digest), signedBy: z.string().max(MAX.name).nullable(), signatureVerdict: z.enum(['valid', 'unsigned', 'not-checked']), at: z.string() }),
  'package.pruned': z.strictObject({ package: PackageRef, at: z.string() }),
  'node.enrolled': z.strictObject({ nodeId: NodeId, classId: ClassId, processorType: ProcessorType, characteristics: Characteristics, at: z.string() }),
  'node.went-stale': z.strictObject({ nodeId: NodeId, lastHeartbeatAt: z.string(), at: z.string() }),
  'node.became-active': z.strictObject({ nodeId: NodeId, at: z.string() }),
  // Stream node-inventories: the nodes whose inventory digest changed in one registry write (a wave finishing is a few events, not one per node).
  'node.inventories-changed': z.strictObject({ nodes: z.array(ChangedInventoryNode).min(1).max(NODE_LIST_CHUNK), inventories: z.array(ChangedInventory).min(1).max(NODE_LIST_CHUNK), at: z.string() }),
  'node.decommissioned': z.strictObject({ nodeId: NodeId, by: Actor, at: z.string() }),
  'class.configuration-changed': z.strictObject({ classId: ClassId, packages: z.array(PackageRef), by: Actor, at: z.string() }),

  // cluster aggregate (stream cluster)
  /** `reason`: the operator's why (absent in events of earlier versions, and when none was given). */
  'cluster-version.adjust-requested': z.strictObject({ adjustmentId: z.string().max(MAX.name), version: z.number().int().positive(), by: Actor, groups: z.array(GroupId), reason: Text.optional(), at: z.string() }),
  'cluster-version.adjust-refused': z.strictObject({
    version: z.number().int().positive(),
    by: Actor,
    reason: Text.optional(),
    blockers: z.array(z.strictObject({ code: z.enum(['NODE_NOT_ACTIVE', 'GROUP_PARTITIONED', 'NODE_INCAPABLE']), nodeId: NodeId.optional(), groupId: GroupId.optional(), range: VersionRange.optional(), members: z.array(z.string()).optional(), message: Text })),
    at: z.string(),
  }),
  'cluster-version.member-acknowledged': z.strictObject({ adjustmentId: z.string().max(MAX.name), groupId: GroupId, memberId: z.string().max(MAX.name), at: z.string() }),
  'cluster-version.adjusted': z.strictObject({ adjustmentId: z.string().max(MAX.name), version: z.number().int().positive(), groups: z.number().int().nonnegative(), at: z.string() }),
  'agent.upgraded': z.strictObject({ nodeId: NodeId, from: SemVer, to: SemVer, at: z.string() }),
} as const;

export type EventType = keyof typeof EVENT_SCHEMAS;
export type EventData<T extends EventType> = z.infer<(typeof EVENT_SCHEMAS)[T]>;
export type DomainEvent = { [T in EventType]: { type: T; data: EventData<T> } }[EventType];
export const EVENT_TYPES = Object.keys(EVENT_SCHEMAS) as EventType[];

export function isEventType(type: string): type is EventType {
  return Object.hasOwn(EVENT_SCHEMAS, type);
}

/** `rollout.votes-recorded` → `rollout`. */
export const eventAggregate = (type: string) => type.slice(0, type.indexOf('.'));

/** Severity used by notification filters. */
export const EVENT_SEVERITY: Partial<Record<EventType, 'info' | 'warning' | 'critical'>> = {
  'rollout.blocked': 'warning',
  'rollout.dependency-discrepancy': 'warning',
  'rollout.paused': 'warning',
  'rollout.node-failed': 'warning',
  'rollout.failed': 'critical',
  'rollout.aborted': 'critical',
  'cluster-version.adjust-refused': 'warning',
  'node.went-stale': 'warning',
};
export const severityOf = (type: string) => (isEventType(type) ? (EVENT_SEVERITY[type] ?? 'info') : 'info');

import { z } from 'zod';
import { Characteristics, MAX, Name, PackageRef, ProcessorType, SelectedPackage, SignedPackage, SoftwareUpdate, VersionRange } from './domain.js';
import { ClassId, NodeId } from './ids.js';
import { Inventory } from './node-protocol.js';

// Request/reply on changeover.registry.<op>. Replies are `{ ok: true, result }` or `{ ok: false, error: ErrorBody }`.

/** changeover.registry.select-modules — which modules each target node gets (claim 3), grouped by identical selection. */
export const SelectModulesRequest = z.strictObject({
  packages: z.array(PackageRef).min(1).max(256),
  nodes: z.array(NodeId).max(MAX.nodesPerMessage).default([]),
  classes: z.array(ClassId).max(1000).default([]),
});
export type SelectModulesRequest = z.infer<typeof SelectModulesRequest>;

export const SelectModulesReply = z.strictObject({
  /** Nodes that get the same selection share one entry; `classId` is set when it is a whole class. */
  assignments: z.array(z.strictObject({ selectionId: z.string().max(MAX.name), packages: z.array(SelectedPackage), nodes: z.array(NodeId), classId: ClassId.optional() })),
  /** Packages with no module for a node's processor type or characteristics (the rollout turns these into PROCESSOR_UNSUPPORTED vetoes). */
  unsupported: z.array(z.strictObject({ nodeId: NodeId, package: z.string().max(MAX.name), processorType: ProcessorType, reason: z.string().max(MAX.text) })),
  unknownNodes: z.array(NodeId).default([]),
});
export type SelectModulesReply = z.infer<typeof SelectModulesReply>;

/** changeover.registry.get-packages — signed manifests by name@version. */
export const GetPackagesRequest = z.strictObject({ packages: z.array(PackageRef).min(1).max(256) });
export const GetPackagesReply = z.strictObject({ packages: z.array(SignedPackage) });

export const NodeStatus = z.enum(['active', 'stale', 'decommissioned']);
export type NodeStatus = z.infer<typeof NodeStatus>;

export const NodeRecord = z.strictObject({
  nodeId: NodeId,
  classId: ClassId,
  processorType: ProcessorType.exclude(['any']),
  characteristics: Characteristics,
  status: NodeStatus,
  lastHeartbeatAt: z.string().nullable(),
  agentVersion: z.string().max(MAX.name).nullable(),
  clusterVersions: VersionRange.nullable(),
  inventory: Inventory.nullable(),
});
export type NodeRecord = z.infer<typeof NodeRecord>;

/** changeover.registry.list-nodes — filter by class, label, status. */
export const ListNodesRequest = z.strictObject({
  classId: ClassId.optional(),
  status: NodeStatus.optional(),
  label: z.string().max(MAX.name).regex(/^[^=]+=[^=]*$/, 'must be key=value').optional(),
  nodeIds: z.array(NodeId).max(MAX.nodesPerMessage).optional(),
  limit: z.number().int().positive().max(MAX.nodesPerMessage).default(1000),
  after: NodeId.optional(),
});
export const ListNodesReply = z.strictObject({ nodes: z.array(NodeRecord), next: NodeId.nullable() });

export const EnrollNodeRequest = z.strictObject({
  nodeId: NodeId,
  classId: ClassId,
  processorType: ProcessorType.exclude(['any']),
  characteristics: Characteristics,
});
export type EnrollNodeRequest = z.infer<typeof EnrollNodeRequest>;

/** changeover.registry.import-image — an update image (.tar.gz, base64 over NATS; raw body over REST). */
export const ImportImageReply = z.strictObject({ update: SoftwareUpdate, packages: z.array(PackageRef) });

export const ClassConfiguration = z.strictObject({ classId: ClassId, packages: z.array(PackageRef).max(256), description: z.string().max(MAX.text).default('') });
export type ClassConfiguration = z.infer<typeof ClassConfiguration>;

export const PackageName = Name;

/** The reply envelope of every request/reply subject. */
export const rpcReply = <S extends z.ZodType>(result: S) =>
  z.union([
    z.strictObject({ ok: z.literal(true), result }),
    z.strictObject({ ok: z.literal(false), error: z.strictObject({ code: z.string(), message: z.string(), details: z.record(z.string(), z.unknown()).optional() }) }),
  ]);

import { z } from 'zod';
import { ApiConsumed, ApiProvided, Characteristics, Digest, MAX, Name, PackageRef, ProcessorType, SelectedPackage, SemVer, SignedPackage, SoftwareUpdate, VersionRange } from './domain.js';
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

/**
 * A node's own NATS identity, minted at enrollment when the registry holds the NATS authority.
 * `creds` is a .creds file (user JWT and nkey seed): a secret, returned once and never stored.
 */
export const NodeNatsCredentials = z.strictObject({
  creds: z.string().min(1).max(8192),
  /** Revocation names this key. */
  userPublicKey: z.string().regex(/^U[A-Z2-7]{55}$/, 'must be a NATS user public key'),
  /** The node must connect with this inbox prefix: its permissions let it hear replies only there. */
  inboxPrefix: z.string().max(MAX.name),
});
export type NodeNatsCredentials = z.infer<typeof NodeNatsCredentials>;

/** changeover.registry.enroll-node reply: the node, and its NATS credentials when the registry mints them. */
export const EnrollNodeReply = NodeRecord.extend({ natsCredentials: NodeNatsCredentials.optional() });
export type EnrollNodeReply = z.infer<typeof EnrollNodeReply>;

/** changeover.registry.revoke-node — revoke every NATS credential issued to a node; the servers refuse it from then on. */
export const RevokeNodeRequest = z.strictObject({
  nodeId: NodeId,
  /** Keep the newest credential (finishing a rotation: re-enroll, deliver the new creds, then revoke the rest). */
  keepLatest: z.boolean().default(false),
});
export const RevokeNodeReply = z.strictObject({
  nodeId: NodeId,
  /** User public keys newly revoked by this request (empty when all were already revoked). */
  revokedKeys: z.array(z.string().max(MAX.name)),
  /** Total keys on the revocation list pushed to the servers. */
  revocations: z.number().int().nonnegative(),
});
export type RevokeNodeReply = z.infer<typeof RevokeNodeReply>;

/** changeover.registry.import-image — an update image (.tar.gz: an upload object over NATS; the raw body over REST). */
export const ImportImageReply = z.strictObject({ update: SoftwareUpdate, packages: z.array(PackageRef) });

export const ClassConfiguration = z.strictObject({ classId: ClassId, packages: z.array(PackageRef).max(256), description: z.string().max(MAX.text).default('') });
export type ClassConfiguration = z.infer<typeof ClassConfiguration>;

export const PackageName = Name;

/** How the registry judged a package's signature when it was published. */
export const SignatureVerdict = z.enum(['valid', 'unsigned', 'not-checked']);
export type SignatureVerdict = z.infer<typeof SignatureVerdict>;

/**
 * changeover.registry.publish-package (and REST POST /packages) — a signed manifest plus the blobs
 * not yet uploaded (digest → base64). Blobs already stored (REST PUT /blobs/:digest) may be omitted.
 */
export const PublishPackageRequest = z.strictObject({
  package: SignedPackage,
  blobs: z.record(Digest, z.base64()).default({}),
});
export type PublishPackageRequest = z.infer<typeof PublishPackageRequest>;

export const PublishPackageReply = z.strictObject({
  package: PackageRef,
  /** false when the same name@version with the same content was already stored (a no-op). */
  created: z.boolean(),
  contentHash: Digest,
  signatureVerdict: SignatureVerdict,
  signedBy: z.string().max(MAX.name).nullable(),
});
export type PublishPackageReply = z.infer<typeof PublishPackageReply>;

/** One stored package version as listed. */
export const PackageSummary = z.strictObject({
  name: Name,
  version: SemVer,
  description: z.string().max(MAX.text),
  contentHash: Digest,
  signatureVerdict: SignatureVerdict,
  signedBy: z.string().max(MAX.name).nullable(),
  modules: z.number().int().nonnegative(),
  createdAt: z.string(),
});
export type PackageSummary = z.infer<typeof PackageSummary>;

/** changeover.registry.list-packages — every stored version, newest first per name. */
export const ListPackagesRequest = z.strictObject({ name: Name.optional(), limit: z.number().int().positive().max(10_000).default(1000) });
export const ListPackagesReply = z.strictObject({ packages: z.array(PackageSummary) });

/**
 * changeover.registry.import-image over NATS: the name of an object the client put in the
 * IMAGE_UPLOAD_BUCKET object store. The registry reads it as a stream and deletes it afterwards.
 */
export const ImportImageRequest = z.strictObject({ upload: z.string().regex(/^[A-Za-z0-9_-]{1,80}$/, 'an object name of letters, digits, _ and - (1-80)') });

export const GetClassRequest = z.strictObject({ classId: ClassId });
/** changeover.registry.set-class — replaces a class's desired packages. */
export const SetClassRequest = ClassConfiguration.extend({ by: z.string().min(1).max(MAX.name).default('system') });
export type SetClassRequest = z.infer<typeof SetClassRequest>;
export const ClassRecord = ClassConfiguration.extend({ nodes: z.number().int().nonnegative(), updatedAt: z.string() });
export type ClassRecord = z.infer<typeof ClassRecord>;

/**
 * changeover.registry.provided-apis — which versions of the named APIs the fleet's active nodes
 * provide, from the inventories the registry holds, leaving out the nodes a rollout checks with its
 * own inventories (the rollout service names them node by node: a class's late joiners must count;
 * `excludeClasses` leaves out whole classes for other callers). The answer is a set of `api@version`,
 * whatever the fleet's size: a rollout's inter-node check needs no node's inventory (claim 10).
 */
export const ProvidedApisRequest = z.strictObject({
  consumes: z.array(ApiConsumed).min(1).max(1024),
  excludeClasses: z.array(ClassId).max(1000).default([]),
  excludeNodes: z.array(NodeId).max(MAX.nodesPerMessage).default([]),
});
export type ProvidedApisRequest = z.infer<typeof ProvidedApisRequest>;
export const ProvidedApisReply = z.strictObject({ provided: z.array(ApiProvided) });
export type ProvidedApisReply = z.infer<typeof ProvidedApisReply>;

/** The reply envelope of every request/reply subject. */
export const rpcReply = <S extends z.ZodType>(result: S) =>
  z.union([
    z.strictObject({ ok: z.literal(true), result }),
    z.strictObject({ ok: z.literal(false), error: z.strictObject({ code: z.string(), message: z.string(), details: z.record(z.string(), z.unknown()).optional() }) }),
  ]);

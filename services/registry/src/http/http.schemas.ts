import { z } from 'zod';
import { ClassId, Digest, Inventory, ListNodesRequest, ListPackagesRequest, Name, NodeId, SemVer, SetClassRequest } from '@changeover/contracts';

// REST-only shapes: query strings arrive as text, path parameters one by one.

export const ListNodesQuery = ListNodesRequest.omit({ nodeIds: true }).extend({ limit: z.coerce.number().int().positive().max(100_000).default(1000) });
export const ListPackagesQuery = ListPackagesRequest.extend({ limit: z.coerce.number().int().positive().max(10_000).default(1000) });
export const PackageParams = z.object({ name: Name, version: SemVer });
export const DigestParam = Digest;
export const NodeIdParam = NodeId;
export const ClassIdParam = ClassId;
/** PUT /classes/:classId body: the class id comes from the path. */
export const SetClassBody = SetClassRequest.omit({ classId: true });

export const BlobUploadReply = z.strictObject({ digest: Digest, created: z.boolean(), size: z.number().int().nonnegative() });
/** GET /nodes/:nodeId/inventory: `stale` when the node's last heartbeat claimed another digest than the stored inventory's. */
export const InventoryStatusReply = z.strictObject({ nodeId: NodeId, inventory: Inventory.nullable(), inventoryDigest: Digest.nullable(), reportedDigest: Digest.nullable(), stale: z.boolean() });
export const HealthReply = z.strictObject({ status: z.literal('ok') });
/** /health/ready: each check by name (postgres, nats, migrations). */
export const ReadyReply = z.strictObject({ status: z.enum(['ok', 'unavailable']), checks: z.record(z.string(), z.boolean()) });

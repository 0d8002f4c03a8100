import { Column, CreateDateColumn, Entity, Index, PrimaryColumn } from 'typeorm';
import type { ClassConfiguration, Characteristics, Inventory, PackageManifest, Signature, VersionRange } from '@changeover/contracts';

// Registry tables. TypeORM owns the schema (see migrations/); the hot paths use plain SQL.

@Entity({ name: 'registry_packages' })
export class PackageRow {
  @PrimaryColumn({ type: 'text' }) name: string;
  @PrimaryColumn({ type: 'text' }) version: string;
  @Column({ type: 'jsonb' }) manifest: PackageManifest;
  @Column({ type: 'jsonb', nullable: true }) signature: Signature | null;
  @Column({ type: 'text', name: 'signature_verdict' }) signatureVerdict: string;
  @Column({ type: 'text', name: 'signed_by', nullable: true }) signedBy: string | null;
  @Column({ type: 'text', name: 'content_hash' }) contentHash: string;
  @CreateDateColumn({ type: 'timestamptz', name: 'created_at' }) createdAt: Date;
}

@Entity({ name: 'registry_nodes' })
@Index('registry_nodes_class', ['classId'])
export class NodeRow {
  @PrimaryColumn({ type: 'text', name: 'node_id' }) nodeId: string;
  @Column({ type: 'text', name: 'class_id' }) classId: string;
  @Column({ type: 'text', name: 'processor_type' }) processorType: string;
  @Column({ type: 'jsonb' }) characteristics: Characteristics;
  @Column({ type: 'timestamptz', name: 'enrolled_at' }) enrolledAt: Date;
  @Column({ type: 'timestamptz', name: 'last_heartbeat_at', nullable: true }) lastHeartbeatAt: Date | null;
  /** The last status transition announced by an event (the sweep compares against it). */
  @Column({ type: 'boolean', default: true }) stale: boolean;
  @Column({ type: 'text', name: 'agent_version', nullable: true }) agentVersion: string | null;
  @Column({ type: 'jsonb', name: 'cluster_versions', nullable: true }) clusterVersions: VersionRange | null;
  @Column({ type: 'jsonb', nullable: true }) inventory: Inventory | null;
  @Column({ type: 'text', name: 'inventory_digest', nullable: true }) inventoryDigest: string | null;
  @Column({ type: 'text', name: 'reported_inventory_digest', nullable: true }) reportedInventoryDigest: string | null;
  @Column({ type: 'text', nullable: true }) phase: string | null;
  @Column({ type: 'timestamptz', name: 'decommissioned_at', nullable: true }) decommissionedAt: Date | null;
}

@Entity({ name: 'registry_classes' })
export class ClassRow {
  @PrimaryColumn({ type: 'text', name: 'class_id' }) classId: string;
  @Column({ type: 'jsonb', default: [] }) packages: ClassConfiguration['packages'];
  @Column({ type: 'text', default: '' }) description: string;
  @Column({ type: 'timestamptz', name: 'updated_at' }) updatedAt: Date;
}

/** Packages referenced by rollouts still in progress: retention never prunes them. */
@Entity({ name: 'registry_rollout_refs' })
export class RolloutRefRow {
  @PrimaryColumn({ type: 'text', name: 'rollout_id' }) rolloutId: string;
  @PrimaryColumn({ type: 'text' }) name: string;
  @PrimaryColumn({ type: 'text' }) version: string;
}

/** Rollouts that finished: a late "created" event of one of them records no references. */
@Entity({ name: 'registry_finished_rollouts' })
export class FinishedRolloutRow {
  @PrimaryColumn({ type: 'text', name: 'rollout_id' }) rolloutId: string;
  @Column({ type: 'timestamptz', name: 'finished_at' }) finishedAt: Date;
}

export const ENTITIES = [PackageRow, NodeRow, ClassRow, RolloutRefRow, FinishedRolloutRow];

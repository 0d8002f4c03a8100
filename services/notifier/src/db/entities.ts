import { Column, CreateDateColumn, Entity, Index, PrimaryColumn, PrimaryGeneratedColumn, Unique } from 'typeorm';

// The notifier's tables (schema `notifier`). TypeORM runs the migration and the CRUD; the hot paths are plain SQL.

@Entity({ schema: 'notifier', name: 'subscriptions' })
export class SubscriptionEntity {
  @PrimaryColumn('uuid') id: string;
  @Column('text') name: string;
  /** The channel as given, webhook secret included (never shown after creation). */
  @Column('jsonb') channel: Record<string, unknown>;
  @Column('jsonb') filter: Record<string, unknown>;
  /** Set for subscriptions from NOTIFIER_DEFAULT_SUBSCRIPTIONS, so a restart does not add them twice. */
  @Column('text', { name: 'default_key', nullable: true, unique: true }) defaultKey: string | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt: Date;
  @Column('timestamptz', { name: 'deleted_at', nullable: true }) deletedAt: Date | null;
}

@Entity({ schema: 'notifier', name: 'deliveries' })
@Unique('deliveries_subscription_event', ['subscriptionId', 'eventId'])
@Index('deliveries_due', ['nextAttemptAt'], { where: `status = 'pending'` })
export class DeliveryEntity {
  @PrimaryColumn('uuid') id: string;
  @Column('uuid', { name: 'subscription_id' }) subscriptionId: string;
  @Column('text', { name: 'event_id' }) eventId: string;
  @Column('text', { name: 'event_type' }) eventType: string;
  @Column('text') channel: string;
  /** The CloudEvent as received: what every attempt sends. */
  @Column('jsonb') event: Record<string, unknown>;
  @Column('text') status: 'pending' | 'delivered' | 'dead';
  @Column('int', { name: 'attempt_count' }) attemptCount: number;
  /** Attempts since the last (re)delivery: what NOTIFIER_MAX_ATTEMPTS limits. */
  @Column('int', { name: 'cycle_attempts' }) cycleAttempts: number;
  @Column('timestamptz', { name: 'next_attempt_at', nullable: true }) nextAttemptAt: Date | null;
  @Column('int', { name: 'last_status_code', nullable: true }) lastStatusCode: number | null;
  @Column('text', { name: 'last_error', nullable: true }) lastError: string | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt: Date;
  @Column('timestamptz', { name: 'delivered_at', nullable: true }) deliveredAt: Date | null;
  /** The latest claim of this delivery: an attempt that outlived its lease records nothing over a newer one. */
  @Column('uuid', { name: 'claim_token', nullable: true }) claimToken: string | null;
}

@Entity({ schema: 'notifier', name: 'delivery_attempts' })
@Index('delivery_attempts_delivery', ['deliveryId'])
export class DeliveryAttemptEntity {
  @PrimaryGeneratedColumn({ type: 'bigint' }) id: string;
  @Column('uuid', { name: 'delivery_id' }) deliveryId: string;
  @Column('int') attempt: number;
  @CreateDateColumn({ type: 'timestamptz' }) at: Date;
  @Column('text') outcome: 'success' | 'failure';
  @Column('int', { name: 'status_code', nullable: true }) statusCode: number | null;
  @Column('int', { name: 'latency_ms' }) latencyMs: number;
  @Column('text', { nullable: true }) error: string | null;
}

/** What the notifier learnt of a node from node.enrolled, for class and label filters. */
@Entity({ schema: 'notifier', name: 'nodes' })
export class NodeFactEntity {
  @PrimaryColumn('text', { name: 'node_id' }) nodeId: string;
  @Column('text', { name: 'class_id' }) classId: string;
  @Column('jsonb', { default: {} }) labels: Record<string, string>;
}

/** The classes a rollout targets, from rollout.created, so class filters match its rollout-wide events. */
@Entity({ schema: 'notifier', name: 'rollouts' })
export class RolloutFactEntity {
  @PrimaryColumn('text', { name: 'rollout_id' }) rolloutId: string;
  @Column('text', { name: 'class_ids', array: true }) classIds: string[];
}

export const ENTITIES = [SubscriptionEntity, DeliveryEntity, DeliveryAttemptEntity, NodeFactEntity, RolloutFactEntity];

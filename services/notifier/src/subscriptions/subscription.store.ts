import { randomBytes, randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { DataSource } from 'typeorm';
import { query, type Sql } from '../db/sql.js';
import { ChangeoverError, ChannelConfig, SubscriptionFilter, parse, type CreateSubscriptionRequest, type Subscription } from '@changeover/contracts';

interface Row {
  id: string;
  name: string;
  channel: ChannelConfig;
  filter: SubscriptionFilter;
  created_at: Date;
}

/** A subscription as matching and delivery see it: channel with its secret. */
export interface ActiveSubscription {
  id: string;
  channel: ChannelConfig;
  filter: SubscriptionFilter;
}

const SubscriptionId = z.uuid();

/** The webhook secret is shown once, in the answer to the creation. */
function redact(channel: ChannelConfig): ChannelConfig {
  if (channel.type !== 'webhook') return channel;
  const { secret: _secret, ...rest } = channel;
  return rest;
}

const toSubscription = (r: Row, showSecret = false): Subscription => ({
  id: r.id,
  name: r.name,
  channel: showSecret ? r.channel : redact(r.channel),
  filter: r.filter,
  createdAt: r.created_at.toISOString(),
});

export class SubscriptionStore {
  constructor(
    private readonly db: DataSource,
    private readonly emailConfigured: boolean,
  ) {}

  async create(req: CreateSubscriptionRequest, defaultKey: string | null = null): Promise<Subscription> {
    if (req.channel.type === 'email' && !this.emailConfigured) throw new ChangeoverError('FEATURE_NOT_ACTIVE', 'e-mail subscriptions need SMTP_URL to be configured');
    const channel: ChannelConfig = req.channel.type === 'webhook' && !req.channel.secret ? { ...req.channel, secret: randomBytes(24).toString('base64url') } : req.channel;
    const rows = await query<Row>(this.db, 
      `INSERT INTO notifier.subscriptions (id, name, channel, filter, default_key) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (default_key) DO UPDATE SET name = EXCLUDED.name, channel = EXCLUDED.channel, filter = EXCLUDED.filter, deleted_at = NULL
       RETURNING id, name, channel, filter, created_at`,
      [randomUUID(), req.name, JSON.stringify(channel), JSON.stringify(req.filter), defaultKey],
    );
    return toSubscription(rows[0]!, true);
  }

  /** Subscriptions from configuration are keyed by name, so a restart updates rather than duplicates them. */
  async ensureDefaults(list: CreateSubscriptionRequest[]): Promise<Subscription[]> {
    const out: Subscription[] = [];
    for (const req of list) out.push(await this.create(req, `default:${req.name}`));
    return out;
  }

  async list(): Promise<Subscription[]> {
    const rows = await query<Row>(this.db, `SELECT id, name, channel, filter, created_at FROM notifier.subscriptions WHERE deleted_at IS NULL ORDER BY created_at, id`);
    return rows.map((r) => toSubscription(r));
  }

  async get(id: string): Promise<Subscription> {
    const rows = await query<Row>(this.db, `SELECT id, name, channel, filter, created_at FROM notifier.subscriptions WHERE id = $1 AND deleted_at IS NULL`, [parse(SubscriptionId, id, 'subscription id')]);
    if (!rows[0]) throw new ChangeoverError('NOT_FOUND', `subscription ${id} not found`);
    return toSubscription(rows[0]);
  }

  /** Soft delete: the delivery log stays readable; pending deliveries are dead-lettered by the worker. */
  async remove(id: string): Promise<void> {
    const rows = await query(this.db, `UPDATE notifier.subscriptions SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL RETURNING id`, [parse(SubscriptionId, id, 'subscription id')]);
    if (!rows.length) throw new ChangeoverError('NOT_FOUND', `subscription ${id} not found`);
  }
}

/** Active subscriptions, read inside the intake transaction so a new one applies to the next event. */
export async function activeSubscriptions(sql: Sql): Promise<ActiveSubscription[]> {
  const rows = await sql<ActiveSubscription>(`SELECT id, channel, filter FROM notifier.subscriptions WHERE deleted_at IS NULL`);
  // Rows were validated when written; parsing again guards against a hand-edited table.
  return rows.flatMap((r) => {
    const channel = ChannelConfig.safeParse(r.channel);
    const filter = SubscriptionFilter.safeParse(r.filter);
    return channel.success && filter.success ? [{ id: r.id, channel: channel.data, filter: filter.data }] : [];
  });
}

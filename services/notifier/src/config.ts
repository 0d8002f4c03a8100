import { z } from 'zod';
import { ChangeoverError, CreateSubscriptionRequest, NatsCredsFile, NatsServers, NatsStreamReplicas, parse } from '@changeover/contracts';
import { AuthEnv, type AuthConfig } from '@changeover/http-auth';
import { DatabaseUrl } from '@changeover/event-store';

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** Optional JSON for subscriptions that exist from start-up (one object or an array), e.g. a Slack channel. */
const DefaultSubscriptions = z
  .string()
  .optional()
  .transform((text, ctx) => {
    if (!text || !text.trim()) return [];
    try {
      const json: unknown = JSON.parse(text);
      return Array.isArray(json) ? json : [json];
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be JSON' });
      return z.NEVER;
    }
  })
  .pipe(z.array(CreateSubscriptionRequest).max(32));

/** Every environment variable the notifier reads, each with its default (see README). */
export const NotifierConfig = z.object({
  /** postgres://…, one host or several (h1:5432,h2:5432) with target_session_attrs=read-write to follow a failover. */
  DATABASE_URL: DatabaseUrl,
  /** One NATS server or a comma-separated list of a cluster's servers (nats://a:4222,nats://b:4222). */
  NATS_URL: NatsServers,
  /** Replicas of every stream, KV bucket and object store this process creates (3 on a three-server cluster). */
  NATS_STREAM_REPLICAS: NatsStreamReplicas,
  /** The notifier's own NATS user (.creds path); unset: no NATS authentication. */
  NATS_CREDS: NatsCredsFile.optional(),
  NOTIFIER_HTTP_PORT: int(0, 65535).default(7103),
  NOTIFIER_CONSUMER_NAME: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).default('notifier'),
  NOTIFIER_MAX_ATTEMPTS: int(1, 100).default(8),
  NOTIFIER_BACKOFF_BASE_MS: int(1, 3_600_000).default(1000),
  NOTIFIER_BACKOFF_MAX_MS: int(1, 86_400_000).default(300_000),
  NOTIFIER_HTTP_TIMEOUT_MS: int(10, 600_000).default(10_000),
  NOTIFIER_CONCURRENCY: int(1, 256).default(16),
  NOTIFIER_POLL_INTERVAL_MS: int(5, 60_000).default(500),
  SMTP_URL: z.string().regex(/^smtps?:\/\//, 'must be smtp:// or smtps://').optional(),
  SMTP_FROM: z.string().min(3).default('changeover@localhost'),
  NOTIFIER_DEFAULT_SUBSCRIPTIONS: DefaultSubscriptions,
  /** Largest JSON request body (413 TOO_LARGE beyond). */
  NOTIFIER_MAX_BODY_BYTES: int(1024, 16 * 1024 * 1024).default(256 * 1024),
  /** Largest event read from CHANGEOVER_EVENTS; a larger one is skipped (counted TOO_LARGE). */
  NOTIFIER_MAX_EVENT_BYTES: int(1024, 64 * 1024 * 1024).default(1024 * 1024),
  /** CHANGEOVER_AUTH, CHANGEOVER_ADMIN_TOKEN, CHANGEOVER_DB_STATEMENT_TIMEOUT_MS: see @changeover/http-auth. */
  ...AuthEnv.shape,
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
});
export type NotifierConfig = z.infer<typeof NotifierConfig>;
export type NotifierConfigInput = z.input<typeof NotifierConfig>;

/** The authentication settings of a parsed configuration. */
export function authConfigOf(c: NotifierConfig): AuthConfig {
  return { enabled: c.CHANGEOVER_AUTH === 'on', ...(c.CHANGEOVER_ADMIN_TOKEN ? { adminToken: c.CHANGEOVER_ADMIN_TOKEN } : {}), statementTimeoutMs: c.CHANGEOVER_DB_STATEMENT_TIMEOUT_MS };
}

/** Validates the environment once; a bad value stops start-up with a message naming the variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): NotifierConfig {
  const config = parse(NotifierConfig, env, 'notifier configuration');
  if (config.NOTIFIER_BACKOFF_MAX_MS < config.NOTIFIER_BACKOFF_BASE_MS) {
    throw new ChangeoverError('VALIDATION_FAILED', 'invalid notifier configuration: NOTIFIER_BACKOFF_MAX_MS must be >= NOTIFIER_BACKOFF_BASE_MS');
  }
  return config;
}

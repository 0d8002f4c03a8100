import { z } from 'zod';
import { NatsCredsFile, NatsServers, NatsStreamReplicas } from '@changeover/contracts';
import { DatabaseUrl } from '../connection/database-url.js';

/** Every variable the stand-alone relay reads; a bad value stops start-up with a clear message. */
export const RelayConfig = z.object({
  /** postgres://…, one host or several (h1:5432,h2:5432) with target_session_attrs=read-write to follow a failover. */
  DATABASE_URL: DatabaseUrl,
  /** One NATS server or a comma-separated list of a cluster's servers (nats://a:4222,nats://b:4222). */
  NATS_URL: NatsServers,
  /** Replicas of every stream, KV bucket and object store this process creates (3 on a three-server cluster). */
  NATS_STREAM_REPLICAS: NatsStreamReplicas,
  /** The relay's own NATS user (.creds path, a `relay` service user); unset: no NATS authentication. */
  NATS_CREDS: NatsCredsFile.optional(),
  RELAY_NAME: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/).default('outbox-relay'),
  RELAY_BATCH_SIZE: z.coerce.number().int().min(1).max(10_000).default(1000),
  RELAY_SOURCE: z.string().min(1).max(256).default('changeover'),
  EVENTS_STREAM: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).default('CHANGEOVER_EVENTS'),
  PG_POOL_SIZE: z.coerce.number().int().min(2).max(100).default(2),
});
export type RelayConfig = z.infer<typeof RelayConfig>;

export function loadRelayConfig(env: NodeJS.ProcessEnv): RelayConfig {
  const parsed = RelayConfig.safeParse(env);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
  throw new Error(`invalid relay configuration: ${problems}`);
}

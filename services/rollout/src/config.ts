import { z } from 'zod';
import { hostname } from 'node:os';
import { NatsCredsFile, NatsServers, NatsStreamReplicas, parse } from '@changeover/contracts';
import { CLUSTER_FAULT_POINTS, type ClusterFaultPoint } from './cluster-version/cluster-version.service.js';
import { AuthEnv, type AuthConfig } from '@changeover/http-auth';
import { DatabaseUrl } from '@changeover/event-store';

const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

/** Every variable the rollout service reads, validated once at start-up. */
export const RolloutConfigSchema = z.object({
  /** postgres://…, one host or several (h1:5432,h2:5432) with target_session_attrs=read-write to follow a failover. */
  DATABASE_URL: DatabaseUrl.default('postgres://postgres@127.0.0.1:5432/changeover'),
  /** One NATS server or a comma-separated list of a cluster's servers (nats://a:4222,nats://b:4222). */
  NATS_URL: NatsServers,
  /** Replicas of every stream, KV bucket and object store this process creates (3 on a three-server cluster). */
  NATS_STREAM_REPLICAS: NatsStreamReplicas,
  /** The rollout service's own NATS user (.creds path); unset: no NATS authentication. */
  NATS_CREDS: NatsCredsFile.optional(),
  ROLLOUT_HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(7102),
  ROLLOUT_HTTP_HOST: z.string().min(1).default('0.0.0.0'),
  ROLLOUT_INSTANCE_ID: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must match [A-Za-z0-9_.-]{1,64}').default(`${hostname().slice(0, 40)}-${process.pid}`),
  ROLLOUT_LEASE_MS: z.coerce.number().int().min(500).max(600_000).default(15_000),
  ROLLOUT_RELAY: bool.default(true),
  /** Bring a node whose hello shows it off its class's configuration to it with a reconcile rollout (DESIGN §3). */
  ROLLOUT_RECONCILE: bool.default(true),
  ROLLOUT_REGISTRY_TIMEOUT_MS: z.coerce.number().int().positive().max(600_000).default(10_000),
  /** Largest JSON request body (413 TOO_LARGE beyond). */
  ROLLOUT_MAX_BODY_BYTES: z.coerce.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
  /** Largest update image accepted by POST /rollouts/from-image (413 TOO_LARGE beyond). */
  ROLLOUT_MAX_IMAGE_BYTES: z.coerce.number().int().min(1024).max(4 * 1024 * 1024 * 1024).default(1024 * 1024 * 1024),
  /** Hello reports per second from one node, and the burst, acted on (each makes owned rollouts re-send); RATE_LIMITED (dropped, counted) beyond. */
  ROLLOUT_HELLO_RATE_PER_S: z.coerce.number().positive().max(1000).default(1),
  ROLLOUT_HELLO_BURST: z.coerce.number().int().min(1).max(10_000).default(5),
  /** How long a node hosting group members has to answer a validate round before its members count as not reached. */
  ROLLOUT_VALIDATE_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(2000),
  /** Server-sent event streams (`GET /rollouts/{id}/stream`, the console's live page) open at once on this instance; 429 RATE_LIMITED beyond. */
  ROLLOUT_MAX_STREAMS: z.coerce.number().int().min(1).max(10_000).default(200),
  /** A stream's longest life: then it ends (`end`, reason expired) and the client reconnects with Last-Event-ID. */
  ROLLOUT_STREAM_MAX_MS: z.coerce.number().int().min(1000).max(86_400_000).default(600_000),
  /** Test only: stop dead (SIGKILL) at this point of a cluster version adjustment. */
  ROLLOUT_FAULT_AT: z.enum(CLUSTER_FAULT_POINTS).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** CHANGEOVER_AUTH, CHANGEOVER_ADMIN_TOKEN, CHANGEOVER_DB_STATEMENT_TIMEOUT_MS: see @changeover/http-auth. */
  ...AuthEnv.shape,
});
export type RolloutConfigEnv = z.infer<typeof RolloutConfigSchema>;

export interface RolloutConfig {
  databaseUrl: string;
  /** NATS_URL: the servers connect() tries, one or a cluster's list. */
  natsServers: string[];
  /** NATS_STREAM_REPLICAS of every stream, KV bucket and object store created. */
  streamReplicas: number;
  /** Path of the service's .creds file when NATS requires authentication. */
  natsCreds?: string;
  httpPort: number;
  httpHost: string;
  instanceId: string;
  leaseMs: number;
  relay: boolean;
  reconcile: boolean;
  registryTimeoutMs: number;
  maxBodyBytes: number;
  maxImageBytes: number;
  helloRate: { perSecond: number; burst: number };
  /** CHANGEOVER_AUTH, CHANGEOVER_ADMIN_TOKEN, CHANGEOVER_DB_STATEMENT_TIMEOUT_MS (see @changeover/http-auth). */
  auth: AuthConfig;
  logLevel: RolloutConfigEnv['LOG_LEVEL'];
  validateTimeoutMs: number;
  streams: { max: number; maxMs: number };
  faultAt?: ClusterFaultPoint;
}

/** Reads and validates the environment; a bad value fails start-up naming the variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env, overrides: Partial<RolloutConfig> = {}): RolloutConfig {
  const e = parse(RolloutConfigSchema, Object.fromEntries(Object.keys(RolloutConfigSchema.shape).map((k) => [k, env[k] === '' ? undefined : env[k]])), 'rollout configuration');
  return {
    databaseUrl: e.DATABASE_URL,
    natsServers: e.NATS_URL,
    streamReplicas: e.NATS_STREAM_REPLICAS,
    ...(e.NATS_CREDS ? { natsCreds: e.NATS_CREDS } : {}),
    httpPort: e.ROLLOUT_HTTP_PORT,
    httpHost: e.ROLLOUT_HTTP_HOST,
    instanceId: e.ROLLOUT_INSTANCE_ID,
    leaseMs: e.ROLLOUT_LEASE_MS,
    relay: e.ROLLOUT_RELAY,
    reconcile: e.ROLLOUT_RECONCILE,
    registryTimeoutMs: e.ROLLOUT_REGISTRY_TIMEOUT_MS,
    maxBodyBytes: e.ROLLOUT_MAX_BODY_BYTES,
    maxImageBytes: e.ROLLOUT_MAX_IMAGE_BYTES,
    helloRate: { perSecond: e.ROLLOUT_HELLO_RATE_PER_S, burst: e.ROLLOUT_HELLO_BURST },
    auth: { enabled: e.CHANGEOVER_AUTH === 'on', ...(e.CHANGEOVER_ADMIN_TOKEN ? { adminToken: e.CHANGEOVER_ADMIN_TOKEN } : {}), statementTimeoutMs: e.CHANGEOVER_DB_STATEMENT_TIMEOUT_MS },
    logLevel: e.LOG_LEVEL,
    validateTimeoutMs: e.ROLLOUT_VALIDATE_TIMEOUT_MS,
    streams: { max: e.ROLLOUT_MAX_STREAMS, maxMs: e.ROLLOUT_STREAM_MAX_MS },
    ...(e.ROLLOUT_FAULT_AT ? { faultAt: e.ROLLOUT_FAULT_AT } : {}),
    ...overrides,
  };
}

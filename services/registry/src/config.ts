import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ChangeoverError, NatsServers, NatsStreamReplicas, parseTrustConfig, RETIRED_KEY_POLICIES, type RetiredKeyPolicy, type TrustConfig, type TrustRoots } from '@changeover/contracts';
import { loadAuthority, type Authority } from '@changeover/nats-auth';
import { AuthEnv, type AuthConfig } from '@changeover/http-auth';
import { DatabaseUrl } from '@changeover/event-store';

const bool = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'])
    .optional()
    .transform((v) => (v === undefined ? fallback : v === 'true' || v === '1' || v === 'yes'));
const int = (fallback: number, min = 0) => z.coerce.number().int().min(min).default(fallback);

/** Every environment variable the registry reads; documented in README.md. */
export const RegistryEnv = z.object({
  /** postgres://…, one host or several (h1:5432,h2:5432) with target_session_attrs=read-write to follow a failover. */
  DATABASE_URL: DatabaseUrl.default('postgres://postgres@127.0.0.1:5432/changeover'),
  /** One NATS server or a comma-separated list of a cluster's servers (nats://a:4222,nats://b:4222). */
  NATS_URL: NatsServers,
  /** Replicas of every stream, KV bucket and object store this process creates (3 on a three-server cluster). */
  NATS_STREAM_REPLICAS: NatsStreamReplicas,
  /** Path of the registry's own .creds file (a service user). Unset: connect without authentication. */
  NATS_CREDS: z.string().min(1).optional(),
  /**
   * The NATS authority (operator, system account, account and user-signing key seeds; JSON inline
   * or a file path). Set: enrollment mints each node's NATS credentials and revocation pushes to
   * the servers. A secret.
   */
  REGISTRY_NATS_AUTHORITY: z.string().optional(),
  /** Lifetime of minted node credentials in seconds (0 = no expiry). */
  REGISTRY_NODE_CREDS_TTL_S: int(0),
  REGISTRY_HTTP_PORT: int(7101),
  REGISTRY_HTTP_HOST: z.string().min(1).default('0.0.0.0'),
  /** JSON map keyId → Ed25519 public key (PEM / base64), or a path to a file holding that JSON. */
  REGISTRY_TRUST_ROOTS: z.string().default(''),
  /** Refuse unsigned packages; defaults to true when trust roots are configured. */
  REGISTRY_REQUIRE_SIGNATURES: z.enum(['true', 'false', '1', '0']).optional(),
  /** Re-published packages signed by a key marked retired in the trust roots: accepted or refused (a retired key never signs a new version). */
  REGISTRY_RETIRED_KEYS: z.enum(RETIRED_KEY_POLICIES).default('accept'),
  REGISTRY_MAX_MODULE_BYTES: int(256 * 1024 * 1024, 1),
  REGISTRY_MAX_IMAGE_BYTES: int(1024 * 1024 * 1024, 1),
  REGISTRY_STALE_AFTER_MS: int(30_000, 100),
  REGISTRY_SWEEP_INTERVAL_MS: int(5_000, 50),
  REGISTRY_HEARTBEAT_FLUSH_MS: int(250, 10),
  /** Keep the last N versions of each package (0 = keep every version). */
  REGISTRY_RETAIN_VERSIONS: int(0),
  REGISTRY_REQUIRE_ENROLLMENT: bool(false),
  REGISTRY_RELAY: bool(true),
  REGISTRY_QUEUE_GROUP: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).default('changeover-registry'),
  /** Largest NATS message the registry takes (requests other than publish/import, agent reports); TOO_LARGE beyond. */
  REGISTRY_MAX_MESSAGE_BYTES: int(1024 * 1024, 1024),
  /** Enrollments (NATS and REST together) per second, and the burst above that rate; RATE_LIMITED beyond. */
  REGISTRY_ENROLL_RATE_PER_S: z.coerce.number().positive().max(100_000).default(50),
  REGISTRY_ENROLL_BURST: int(200, 1),
  /** Hello reports per second from one node, and the burst; RATE_LIMITED (counted, dropped) beyond. */
  REGISTRY_HELLO_RATE_PER_S: z.coerce.number().positive().max(1000).default(1),
  REGISTRY_HELLO_BURST: int(5, 1),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'silent']).default('info'),
  /** CHANGEOVER_AUTH, CHANGEOVER_ADMIN_TOKEN, CHANGEOVER_DB_STATEMENT_TIMEOUT_MS: see @changeover/http-auth. */
  ...AuthEnv.shape,
});

export interface RegistryConfig {
  databaseUrl: string;
  /** NATS_URL: the servers connect() tries, one or a cluster's list. */
  natsServers: string[];
  /** NATS_STREAM_REPLICAS of every stream, KV bucket and object store created. */
  streamReplicas: number;
  httpPort: number;
  httpHost: string;
  trustRoots: TrustRoots;
  /** Key ids among the trust roots that are retired. */
  retiredKeys: string[];
  retiredKeyPolicy: RetiredKeyPolicy;
  requireSignatures: boolean;
  /** Path of the registry's .creds file, if NATS requires authentication. */
  natsCreds?: string;
  /** Present when the registry mints node credentials. */
  natsAuthority?: Authority;
  nodeCredsTtlS: number;
  maxModuleBytes: number;
  maxImageBytes: number;
  staleAfterMs: number;
  sweepIntervalMs: number;
  heartbeatFlushMs: number;
  retainVersions: number;
  requireEnrollment: boolean;
  relay: boolean;
  queueGroup: string;
  logLevel: z.infer<typeof RegistryEnv>['LOG_LEVEL'];
  maxMessageBytes: number;
  enrollRate: { perSecond: number; burst: number };
  helloRate: { perSecond: number; burst: number };
  auth: AuthConfig;
}

/** Validates the environment once at start-up; a bad value throws with every offending variable named. */
export function loadConfig(env: Record<string, string | undefined> = process.env): RegistryConfig {
  const parsed = RegistryEnv.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ChangeoverError('VALIDATION_FAILED', `invalid registry configuration: ${lines}`);
  }
  const e = parsed.data;
  const { roots: trustRoots, retired: retiredKeys } = parseTrustConfigSpec(e.REGISTRY_TRUST_ROOTS);
  if (e.NATS_CREDS !== undefined) assertCredsFile(e.NATS_CREDS);
  const natsAuthority = e.REGISTRY_NATS_AUTHORITY?.trim() ? parseAuthority(e.REGISTRY_NATS_AUTHORITY) : undefined;
  const hasRoots = Object.keys(trustRoots).length > 0;
  const requireSignatures = e.REGISTRY_REQUIRE_SIGNATURES === undefined ? hasRoots : e.REGISTRY_REQUIRE_SIGNATURES === 'true' || e.REGISTRY_REQUIRE_SIGNATURES === '1';
  if (requireSignatures && !hasRoots) throw new ChangeoverError('VALIDATION_FAILED', 'invalid registry configuration: REGISTRY_REQUIRE_SIGNATURES=true needs REGISTRY_TRUST_ROOTS');
  return {
    databaseUrl: e.DATABASE_URL,
    natsServers: e.NATS_URL,
    streamReplicas: e.NATS_STREAM_REPLICAS,
    httpPort: e.REGISTRY_HTTP_PORT,
    httpHost: e.REGISTRY_HTTP_HOST,
    trustRoots,
    retiredKeys,
    retiredKeyPolicy: e.REGISTRY_RETIRED_KEYS,
    requireSignatures,
    ...(e.NATS_CREDS !== undefined ? { natsCreds: e.NATS_CREDS } : {}),
    ...(natsAuthority ? { natsAuthority } : {}),
    nodeCredsTtlS: e.REGISTRY_NODE_CREDS_TTL_S,
    maxModuleBytes: e.REGISTRY_MAX_MODULE_BYTES,
    maxImageBytes: e.REGISTRY_MAX_IMAGE_BYTES,
    staleAfterMs: e.REGISTRY_STALE_AFTER_MS,
    sweepIntervalMs: e.REGISTRY_SWEEP_INTERVAL_MS,
    heartbeatFlushMs: e.REGISTRY_HEARTBEAT_FLUSH_MS,
    retainVersions: e.REGISTRY_RETAIN_VERSIONS,
    requireEnrollment: e.REGISTRY_REQUIRE_ENROLLMENT,
    relay: e.REGISTRY_RELAY,
    queueGroup: e.REGISTRY_QUEUE_GROUP,
    logLevel: e.LOG_LEVEL,
    maxMessageBytes: e.REGISTRY_MAX_MESSAGE_BYTES,
    enrollRate: { perSecond: e.REGISTRY_ENROLL_RATE_PER_S, burst: e.REGISTRY_ENROLL_BURST },
    helloRate: { perSecond: e.REGISTRY_HELLO_RATE_PER_S, burst: e.REGISTRY_HELLO_BURST },
    auth: { enabled: e.CHANGEOVER_AUTH === 'on', ...(e.CHANGEOVER_ADMIN_TOKEN ? { adminToken: e.CHANGEOVER_ADMIN_TOKEN } : {}), statementTimeoutMs: e.CHANGEOVER_DB_STATEMENT_TIMEOUT_MS },
  };
}

/** Inline JSON, or a path to a JSON file; every key is checked to be an Ed25519 public key. */
export function parseTrustRoots(value: string): TrustRoots {
  return parseTrustConfigSpec(value).roots;
}

/** REGISTRY_TRUST_ROOTS: `{ keyId: publicKey | { key, retired: true } }`, inline or in a file. */
export function parseTrustConfigSpec(value: string): TrustConfig {
  const text = value.trim();
  if (!text) return { roots: {}, retired: [] };
  let json: unknown;
  try {
    json = JSON.parse(text.startsWith('{') ? text : readFileSync(text, 'utf8'));
  } catch (e) {
    throw new ChangeoverError('VALIDATION_FAILED', `invalid registry configuration: REGISTRY_TRUST_ROOTS is neither a JSON map nor a readable JSON file (${(e as Error).message})`);
  }
  try {
    return parseTrustConfig(json, 'REGISTRY_TRUST_ROOTS');
  } catch (e) {
    throw new ChangeoverError('VALIDATION_FAILED', `invalid registry configuration: ${(e as Error).message}`);
  }
}

/** REGISTRY_NATS_AUTHORITY: the authority JSON inline or in a file; never echoes a seed. */
function parseAuthority(value: string): Authority {
  const text = value.trim();
  let json: string;
  try {
    json = text.startsWith('{') ? text : readFileSync(text, 'utf8');
  } catch (e) {
    throw new ChangeoverError('VALIDATION_FAILED', `invalid registry configuration: REGISTRY_NATS_AUTHORITY: cannot read ${text.slice(0, 200)} (${(e as Error).message})`);
  }
  try {
    return loadAuthority(json);
  } catch (e) {
    throw new ChangeoverError('VALIDATION_FAILED', `invalid registry configuration: REGISTRY_NATS_AUTHORITY: ${(e as Error).message}`);
  }
}

function assertCredsFile(path: string): void {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ChangeoverError('VALIDATION_FAILED', `invalid registry configuration: NATS_CREDS: cannot read ${path} (${(e as Error).message})`);
  }
  if (!text.includes('BEGIN NATS USER JWT') || !text.includes('BEGIN USER NKEY SEED')) throw new ChangeoverError('VALIDATION_FAILED', `invalid registry configuration: NATS_CREDS: ${path} is not a NATS .creds file`);
}

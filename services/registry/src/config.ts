import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ChangeoverError, toPublicKey, type TrustRoots } from '@changeover/contracts';

const bool = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'])
    .optional()
    .transform((v) => (v === undefined ? fallback : v === 'true' || v === '1' || v === 'yes'));
const int = (fallback: number, min = 0) => z.coerce.number().int().min(min).default(fallback);

/** Every environment variable the registry reads; documented in README.md. */
export const RegistryEnv = z.object({
  DATABASE_URL: z.string().url().default('postgres://postgres@127.0.0.1:5432/changeover'),
  NATS_URL: z.string().min(1).default('nats://127.0.0.1:4222'),
  REGISTRY_HTTP_PORT: int(7101),
  REGISTRY_HTTP_HOST: z.string().min(1).default('0.0.0.0'),
  /** JSON map keyId → Ed25519 public key (PEM / base64), or a path to a file holding that JSON. */
  REGISTRY_TRUST_ROOTS: z.string().default(''),
  /** Refuse unsigned packages; defaults to true when trust roots are configured. */
  REGISTRY_REQUIRE_SIGNATURES: z.enum(['true', 'false', '1', '0']).optional(),
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
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'silent']).default('info'),
});

export interface RegistryConfig {
  databaseUrl: string;
  natsUrl: string;
  httpPort: number;
  httpHost: string;
  trustRoots: TrustRoots;
  requireSignatures: boolean;
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
}

/** Validates the environment once at start-up; a bad value throws with every offending variable named. */
export function loadConfig(env: Record<string, string | undefined> = process.env): RegistryConfig {
  const parsed = RegistryEnv.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ChangeoverError('VALIDATION_FAILED', `invalid registry configuration: ${lines}`);
  }
  const e = parsed.data;
  const trustRoots = parseTrustRoots(e.REGISTRY_TRUST_ROOTS);
  const hasRoots = Object.keys(trustRoots).length > 0;
  const requireSignatures = e.REGISTRY_REQUIRE_SIGNATURES === undefined ? hasRoots : e.REGISTRY_REQUIRE_SIGNATURES === 'true' || e.REGISTRY_REQUIRE_SIGNATURES === '1';
  if (requireSignatures && !hasRoots) throw new ChangeoverError('VALIDATION_FAILED', 'invalid registry configuration: REGISTRY_REQUIRE_SIGNATURES=true needs REGISTRY_TRUST_ROOTS');
  return {
    databaseUrl: e.DATABASE_URL,
    natsUrl: e.NATS_URL,
    httpPort: e.REGISTRY_HTTP_PORT,
    httpHost: e.REGISTRY_HTTP_HOST,
    trustRoots,
    requireSignatures,
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
  };
}

/** Inline JSON, or a path to a JSON file; every key is checked to be an Ed25519 public key. */
export function parseTrustRoots(value: string): TrustRoots {
  const text = value.trim();
  if (!text) return {};
  let json: unknown;
  try {
    json = JSON.parse(text.startsWith('{') ? text : readFileSync(text, 'utf8'));
  } catch (e) {
    throw new ChangeoverError('VALIDATION_FAILED', `invalid registry configuration: REGISTRY_TRUST_ROOTS is neither a JSON map nor a readable JSON file (${(e as Error).message})`);
  }
  const map = z.record(z.string().min(1).max(128), z.string().min(1)).safeParse(json);
  if (!map.success) throw new ChangeoverError('VALIDATION_FAILED', 'invalid registry configuration: REGISTRY_TRUST_ROOTS must map keyId → public key string');
  const roots: TrustRoots = {};
  for (const [keyId, key] of Object.entries(map.data)) roots[keyId] = toPublicKey(keyId, key);
  return roots;
}

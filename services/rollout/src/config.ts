import { z } from 'zod';
import { hostname } from 'node:os';
import { parse } from '@changeover/contracts';

const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

/** Every variable the rollout service reads, validated once at start-up. */
export const RolloutConfigSchema = z.object({
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\/\S+$/, 'must be a postgres:// URL').default('postgres://postgres@127.0.0.1:5432/changeover'),
  NATS_URL: z.string().min(1).default('nats://127.0.0.1:4222'),
  ROLLOUT_HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(7102),
  ROLLOUT_HTTP_HOST: z.string().min(1).default('0.0.0.0'),
  ROLLOUT_INSTANCE_ID: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must match [A-Za-z0-9_.-]{1,64}').default(`${hostname().slice(0, 40)}-${process.pid}`),
  ROLLOUT_LEASE_MS: z.coerce.number().int().min(500).max(600_000).default(15_000),
  ROLLOUT_RELAY: bool.default(true),
  ROLLOUT_REGISTRY_TIMEOUT_MS: z.coerce.number().int().positive().max(600_000).default(10_000),
  /** Bearer tokens, `token=name:role,…` (roles viewer, operator, admin); empty: no authentication. */
  ROLLOUT_TOKENS: z.string().default(''),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});
export type RolloutConfigEnv = z.infer<typeof RolloutConfigSchema>;

export interface RolloutConfig {
  databaseUrl: string;
  natsUrl: string;
  httpPort: number;
  httpHost: string;
  instanceId: string;
  leaseMs: number;
  relay: boolean;
  registryTimeoutMs: number;
  tokens: Map<string, { name: string; role: 'viewer' | 'operator' | 'admin' }>;
  logLevel: RolloutConfigEnv['LOG_LEVEL'];
}

function parseTokens(spec: string): RolloutConfig['tokens'] {
  const out: RolloutConfig['tokens'] = new Map();
  for (const item of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([^=]+)=([A-Za-z0-9_.-]+):(viewer|operator|admin)$/.exec(item);
    if (!m) throw new Error('ROLLOUT_TOKENS: each entry must be token=name:role (role viewer|operator|admin)');
    out.set(m[1]!, { name: m[2]!, role: m[3] as 'viewer' | 'operator' | 'admin' });
  }
  return out;
}

/** Reads and validates the environment; a bad value fails start-up naming the variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env, overrides: Partial<RolloutConfig> = {}): RolloutConfig {
  const e = parse(RolloutConfigSchema, Object.fromEntries(Object.keys(RolloutConfigSchema.shape).map((k) => [k, env[k] === '' ? undefined : env[k]])), 'rollout configuration');
  return {
    databaseUrl: e.DATABASE_URL,
    natsUrl: e.NATS_URL,
    httpPort: e.ROLLOUT_HTTP_PORT,
    httpHost: e.ROLLOUT_HTTP_HOST,
    instanceId: e.ROLLOUT_INSTANCE_ID,
    leaseMs: e.ROLLOUT_LEASE_MS,
    relay: e.ROLLOUT_RELAY,
    registryTimeoutMs: e.ROLLOUT_REGISTRY_TIMEOUT_MS,
    tokens: parseTokens(e.ROLLOUT_TOKENS),
    logLevel: e.LOG_LEVEL,
    ...overrides,
  };
}

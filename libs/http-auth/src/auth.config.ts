import { z } from 'zod';
import { ChangeoverError } from '@changeover/contracts';
import { TOKEN_PATTERN } from './token-hash.js';

/**
 * The variables every HTTP service reads for authentication (merged into each service's config):
 * CHANGEOVER_AUTH (`on` by default; `off` only when asked for: every caller is then an anonymous admin),
 * CHANGEOVER_ADMIN_TOKEN (the bootstrap admin token, to create the first tokens), and
 * CHANGEOVER_DB_STATEMENT_TIMEOUT_MS (Postgres statement_timeout of the token lookups and audit writes).
 */
// An empty value (compose's `${VAR:-}`) counts as unset.
const blank = (v: unknown) => (v === '' ? undefined : v);

export const AuthEnv = z.object({
  CHANGEOVER_AUTH: z.preprocess(blank, z.enum(['on', 'off']).default('on')),
  CHANGEOVER_ADMIN_TOKEN: z.preprocess(
    blank,
    z
      .string()
      .regex(/^[A-Za-z0-9_-]{32,256}$/, 'must be 32 to 256 characters of [A-Za-z0-9_-] (e.g. the output of `openssl rand -hex 32`)')
      .optional(),
  ),
  CHANGEOVER_DB_STATEMENT_TIMEOUT_MS: z.preprocess(blank, z.coerce.number().int().min(100).max(600_000).default(10_000)),
});

export interface AuthConfig {
  enabled: boolean;
  /** The bootstrap admin token, if configured. */
  adminToken?: string;
  statementTimeoutMs: number;
}

/** Validates the auth variables of `env` (empty strings count as unset). */
export function loadAuthConfig(env: Record<string, string | undefined>): AuthConfig {
  const pick = (k: keyof z.infer<typeof AuthEnv>) => (env[k] === '' ? undefined : env[k]);
  const r = AuthEnv.safeParse({ CHANGEOVER_AUTH: pick('CHANGEOVER_AUTH'), CHANGEOVER_ADMIN_TOKEN: pick('CHANGEOVER_ADMIN_TOKEN'), CHANGEOVER_DB_STATEMENT_TIMEOUT_MS: pick('CHANGEOVER_DB_STATEMENT_TIMEOUT_MS') });
  if (!r.success) throw new ChangeoverError('VALIDATION_FAILED', `invalid auth configuration: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const e = r.data;
  return { enabled: e.CHANGEOVER_AUTH === 'on', ...(e.CHANGEOVER_ADMIN_TOKEN ? { adminToken: e.CHANGEOVER_ADMIN_TOKEN } : {}), statementTimeoutMs: e.CHANGEOVER_DB_STATEMENT_TIMEOUT_MS };
}

export { TOKEN_PATTERN };

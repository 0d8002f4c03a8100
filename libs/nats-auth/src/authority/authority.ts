import { createAccount, createOperator, fromPublic, fromSeed, type KeyPair } from '@nats-io/nkeys';
import { z } from 'zod';
import { ChangeoverError } from '@changeover/contracts';

/**
 * The signing keys of Changeover's NATS trust chain (decentralized auth): an operator that the
 * servers trust, a system account (server administration: pushing account JWTs) and the
 * CHANGEOVER account every service and node lives in, whose users are signed by a separate
 * signing key. It is a secret: whoever holds it can mint credentials.
 */
export interface Authority {
  readonly operator: KeyPair;
  readonly systemAccount: KeyPair;
  readonly account: KeyPair;
  /** Signs user JWTs; listed in the account JWT, so it can be rotated without a new account. */
  readonly userSigner: KeyPair;
}

/** The stored form of an authority: four nkey seeds. */
export const AuthorityConfig = z.strictObject({
  version: z.literal(1),
  operatorSeed: z.string().startsWith('SO'),
  systemAccountSeed: z.string().startsWith('SA'),
  accountSeed: z.string().startsWith('SA'),
  userSignerSeed: z.string().startsWith('SA'),
});
export type AuthorityConfig = z.infer<typeof AuthorityConfig>;

/** Public keys only: safe to log and to show. */
export interface AuthorityPublicKeys {
  operator: string;
  systemAccount: string;
  account: string;
  userSigner: string;
}

/** A fresh trust chain with new random keys. */
export function createAuthority(): Authority {
  return { operator: createOperator(), systemAccount: createAccount(), account: createAccount(), userSigner: createAccount() };
}

/** Rebuilds an authority from its stored form (an object or its JSON); anything malformed is VALIDATION_FAILED. */
export function loadAuthority(config: AuthorityConfig | string): Authority {
  let raw: unknown = config;
  if (typeof config === 'string') {
    try {
      raw = JSON.parse(config);
    } catch {
      throw new ChangeoverError('VALIDATION_FAILED', 'NATS authority is not valid JSON');
    }
  }
  const parsed = AuthorityConfig.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    // Never echo a seed into an error message.
    throw new ChangeoverError('VALIDATION_FAILED', `NATS authority: ${issue?.path.join('.') || '(root)'} ${issue?.message ?? 'is invalid'}`);
  }
  const c = parsed.data;
  return {
    operator: keyOf('operatorSeed', c.operatorSeed, 'O'),
    systemAccount: keyOf('systemAccountSeed', c.systemAccountSeed, 'A'),
    account: keyOf('accountSeed', c.accountSeed, 'A'),
    userSigner: keyOf('userSignerSeed', c.userSignerSeed, 'A'),
  };
}

/** The stored form of an authority (contains every seed: keep it in a secret store). */
export function exportAuthority(authority: Authority): AuthorityConfig {
  const seed = (kp: KeyPair) => new TextDecoder().decode(kp.getSeed());
  return {
    version: 1,
    operatorSeed: seed(authority.operator),
    systemAccountSeed: seed(authority.systemAccount),
    accountSeed: seed(authority.account),
    userSignerSeed: seed(authority.userSigner),
  };
}

export function authorityPublicKeys(authority: Authority): AuthorityPublicKeys {
  return {
    operator: authority.operator.getPublicKey(),
    systemAccount: authority.systemAccount.getPublicKey(),
    account: authority.account.getPublicKey(),
    userSigner: authority.userSigner.getPublicKey(),
  };
}

/** Throws VALIDATION_FAILED unless `key` is a user public nkey (U…), as printed in creds and JWTs. */
export function assertUserPublicKey(key: unknown): string {
  if (typeof key === 'string' && key.startsWith('U')) {
    try {
      fromPublic(key);
      return key;
    } catch {
      // fall through to the typed error
    }
  }
  throw new ChangeoverError('VALIDATION_FAILED', 'userPublicKey is not a NATS user public key (U…)');
}

function keyOf(field: string, seed: string, prefix: 'O' | 'A'): KeyPair {
  try {
    const kp = fromSeed(new TextEncoder().encode(seed));
    if (kp.getPublicKey().startsWith(prefix)) return kp;
  } catch {
    // fall through to the typed error
  }
  throw new ChangeoverError('VALIDATION_FAILED', `NATS authority: ${field} is not a valid ${prefix === 'O' ? 'operator' : 'account'} seed`);
}

import { encodeAccount, encodeOperator, encodeUser, fmtCreds, type Account, type User } from '@nats-io/jwt';
import { createUser, type KeyPair } from '@nats-io/nkeys';
import type { Authority } from '../authority/authority.js';
import type { SubjectPermissions } from '../permissions/node.permissions.js';
import type { Revocation } from './revocation.js';

export const OPERATOR_NAME = 'changeover';
export const ACCOUNT_NAME = 'CHANGEOVER';
export const SYSTEM_ACCOUNT_NAME = 'SYS';

/** Core NATS limits: none (the JWT default of 0 would mean "nothing allowed" to the server). */
const UNLIMITED = { subs: -1, data: -1, payload: -1, conn: -1, leaf: -1, imports: -1, exports: -1, wildcards: true } as const;
/** JetStream on for the account, unbounded: the services size their own streams. */
const JETSTREAM_UNLIMITED = { mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 } as const;

export function operatorJwt(authority: Authority): Promise<string> {
  return encodeOperator(OPERATOR_NAME, authority.operator, { system_account: authority.systemAccount.getPublicKey() });
}

export function systemAccountJwt(authority: Authority): Promise<string> {
  return encodeAccount(SYSTEM_ACCOUNT_NAME, publicOf(authority.systemAccount), { limits: { ...UNLIMITED } }, { signer: authority.operator });
}

/** The CHANGEOVER account JWT carrying every revocation; the servers enforce the newest one they hold. */
export function accountJwt(authority: Authority, revocations: readonly Revocation[] = []): Promise<string> {
  const account: Partial<Account> = {
    limits: { ...UNLIMITED, ...JETSTREAM_UNLIMITED },
    signing_keys: [authority.userSigner.getPublicKey()],
  };
  if (revocations.length > 0) {
    // A revocation refuses every JWT of that user issued at or before the time (unix seconds).
    account.revocations = Object.fromEntries(revocations.map((r) => [r.userPublicKey, r.revokedAt]));
  }
  return encodeAccount(ACCOUNT_NAME, publicOf(authority.account), account, { signer: authority.operator });
}

export interface MintedUser {
  /** The .creds file text: the user JWT and the user's nkey seed (a secret). */
  creds: string;
  jwt: string;
  userPublicKey: string;
}

/** Signs a fresh user of the CHANGEOVER account; `permissions` undefined = everything the account allows. */
export async function mintUser(authority: Authority, name: string, permissions: SubjectPermissions | undefined, opts: { tags?: string[]; expiresAt?: number } = {}): Promise<MintedUser> {
  const user = createUser();
  const claims: Partial<User> = { issuer_account: authority.account.getPublicKey() };
  if (permissions) {
    claims.pub = permissions.pub;
    claims.sub = permissions.sub;
    // The JWT carries the response window in nanoseconds.
    if (permissions.resp) claims.resp = { max: permissions.resp.max, ttl: permissions.resp.ttlMs * 1_000_000 };
  }
  if (opts.tags) claims.tags = opts.tags;
  const jwt = await encodeUser(name, user, publicOf(authority.account), claims, { signer: authority.userSigner, ...(opts.expiresAt ? { exp: opts.expiresAt } : {}) });
  return { creds: new TextDecoder().decode(fmtCreds(jwt, user)), jwt, userPublicKey: user.getPublicKey() };
}

/** A short-lived user of the system account, for pushing account JWTs to the servers. */
export async function mintSystemUser(authority: Authority, nowSeconds: number, ttlSeconds = 300): Promise<MintedUser> {
  const user = createUser();
  const jwt = await encodeUser('changeover-admin', user, authority.systemAccount, {}, { exp: nowSeconds + ttlSeconds });
  return { creds: new TextDecoder().decode(fmtCreds(jwt, user)), jwt, userPublicKey: user.getPublicKey() };
}

function publicOf(kp: KeyPair): string {
  return kp.getPublicKey();
}

import { ChangeoverError } from '@changeover/contracts';
import { authorityPublicKeys, type Authority } from '../authority/authority.js';
import { accountJwt, operatorJwt, systemAccountJwt } from '../credentials/claims.js';
import type { Revocation } from '../credentials/revocation.js';

/**
 * The nats-server configuration block for operator mode: trust the operator, use the system
 * account, and keep account JWTs in a directory ("full" resolver) so pushed updates such as
 * revocations survive a restart. The preloaded JWTs are used only when the directory holds
 * nothing newer. Append it to a config that has `listen` and `jetstream`.
 */
export async function serverConfig(authority: Authority, opts: { resolverDir: string; revocations?: readonly Revocation[] }): Promise<string> {
  if (typeof opts.resolverDir !== 'string' || opts.resolverDir.length === 0 || /[\n\r]/.test(opts.resolverDir)) {
    throw new ChangeoverError('VALIDATION_FAILED', 'resolverDir must be a directory path');
  }
  const keys = authorityPublicKeys(authority);
  return [
    `operator: ${await operatorJwt(authority)}`,
    `system_account: ${keys.systemAccount}`,
    `resolver: { type: full, dir: ${JSON.stringify(opts.resolverDir)}, allow_delete: false, interval: "2m" }`,
    'resolver_preload: {',
    `  ${keys.systemAccount}: ${await systemAccountJwt(authority)}`,
    `  ${keys.account}: ${await accountJwt(authority, opts.revocations ?? [])}`,
    '}',
    '',
  ].join('\n');
}

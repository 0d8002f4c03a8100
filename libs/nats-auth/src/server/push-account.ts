import { connect, credsAuthenticator } from '@nats-io/transport-node';
import { z } from 'zod';
import { ChangeoverError } from '@changeover/contracts';
import type { Authority } from '../authority/authority.js';
import { mintSystemUser } from '../credentials/claims.js';

/** The servers' answer to a claims update. */
const ClaimsUpdateReply = z.union([
  z.object({ data: z.object({ code: z.number(), message: z.string().optional() }) }),
  z.object({ error: z.object({ code: z.number().optional(), description: z.string().optional() }) }),
]);

/**
 * Pushes an account JWT (e.g. from `revokeNode`) to the servers as the system account; the
 * servers store it and apply it at once, closing connections of users it revokes. Throws
 * UNAVAILABLE when no server answers and FORBIDDEN when the server refuses the JWT.
 */
export async function pushAccountJwt(authority: Authority, jwt: string, opts: { servers: string | string[]; timeoutMs?: number; now?: number }): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const admin = await mintSystemUser(authority, Math.floor((opts.now ?? Date.now()) / 1000));
  let nc;
  try {
    nc = await connect({ servers: opts.servers, authenticator: credsAuthenticator(new TextEncoder().encode(admin.creds)), reconnect: false, timeout: timeoutMs, name: 'changeover-nats-auth' });
  } catch (e) {
    throw new ChangeoverError('UNAVAILABLE', `cannot reach NATS as the system account: ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    let raw: unknown;
    try {
      const m = await nc.request('$SYS.REQ.CLAIMS.UPDATE', jwt, { timeout: timeoutMs });
      raw = m.json();
    } catch (e) {
      throw new ChangeoverError('UNAVAILABLE', `no NATS server took the account JWT: ${e instanceof Error ? e.message : String(e)}`);
    }
    const reply = ClaimsUpdateReply.safeParse(raw);
    if (!reply.success) throw new ChangeoverError('INTERNAL', 'unexpected reply to a NATS claims update');
    if ('error' in reply.data) throw new ChangeoverError('FORBIDDEN', `NATS refused the account JWT: ${reply.data.error.description ?? 'no reason given'}`);
  } finally {
    await nc.close();
  }
}

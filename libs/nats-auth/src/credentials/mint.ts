import { assertId } from '@changeover/contracts';
import type { Authority } from '../authority/authority.js';
import { assertService, nodeInboxPrefix, nodePermissions, type ModuleReads } from '../permissions/node.permissions.js';
import { accountJwt, mintUser, type MintedUser } from './claims.js';
import { nodeRevocation, withRevocation, type Revocation } from './revocation.js';

export interface NodeCredentials extends MintedUser {
  nodeId: string;
  classId: string;
  /** The node must connect with this `inboxPrefix`: its permissions let it hear replies only there. */
  inboxPrefix: string;
}

/**
 * Credentials for one node, minted at enrollment: publish only its own reports, hear only its own
 * node and class commands and replies, read the module store. Store `userPublicKey` with the node:
 * it is what revocation names. No server round trip: the servers trust the signature.
 */
export async function mintNodeCredentials(authority: Authority, input: { nodeId: string; classId: string; expiresAt?: number; moduleReads?: ModuleReads }): Promise<NodeCredentials> {
  const nodeId = assertId('node', input.nodeId);
  const classId = assertId('class', input.classId);
  const minted = await mintUser(authority, `node:${nodeId}`, nodePermissions(nodeId, classId, input.moduleReads ? { moduleReads: input.moduleReads } : {}), {
    tags: [`node:${nodeId}`.toLowerCase(), `class:${classId}`.toLowerCase()],
    ...(input.expiresAt ? { expiresAt: input.expiresAt } : {}),
  });
  return { ...minted, nodeId, classId, inboxPrefix: nodeInboxPrefix(nodeId) };
}

/** Credentials for one service process (registry, rollout, notifier, relay, cli): the whole account. */
export async function mintServiceCredentials(authority: Authority, service: string): Promise<MintedUser & { service: string }> {
  const name = assertService(service);
  return { ...(await mintUser(authority, `service:${name}`, undefined, { tags: [`service:${name}`] })), service: name };
}

/**
 * Revokes one node's credentials. Returns the full revocation list to store (pass it back next
 * time: the account JWT holds every revocation at once) and the account JWT to push with
 * `pushAccountJwt` — nothing changes on the servers until it is pushed.
 */
export async function revokeNode(
  authority: Authority,
  input: { nodeId: string; userPublicKey: string },
  opts: { revoked?: readonly Revocation[]; now?: number } = {},
): Promise<{ revocation: Revocation; revocations: Revocation[]; accountJwt: string }> {
  const revocation = nodeRevocation(input, opts.now ?? Date.now());
  const revocations = withRevocation(opts.revoked ?? [], revocation);
  return { revocation, revocations, accountJwt: await accountJwt(authority, revocations) };
}

import { credsAuthenticator, type ConnectionOptions } from '@nats-io/transport-node';
import { nodeInboxPrefix } from '../permissions/node.permissions.js';

/** What a node's connection needs besides `servers`: its credentials and the inbox its permissions allow. */
export function nodeConnectionOptions(creds: string | Uint8Array, nodeId: string): Pick<ConnectionOptions, 'authenticator' | 'inboxPrefix'> {
  const bytes = typeof creds === 'string' ? new TextEncoder().encode(creds) : creds;
  return { authenticator: credsAuthenticator(bytes), inboxPrefix: nodeInboxPrefix(nodeId) };
}

/** What a service's connection needs besides `servers`. */
export function serviceConnectionOptions(creds: string | Uint8Array): Pick<ConnectionOptions, 'authenticator'> {
  return { authenticator: credsAuthenticator(typeof creds === 'string' ? new TextEncoder().encode(creds) : creds) };
}

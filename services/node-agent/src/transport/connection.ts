import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from '@nats-io/transport-node';
import { nodeConnectionOptions, nodeInboxPrefix, serviceConnectionOptions } from '@changeover/nats-auth';
import type { AgentConfig } from '../config.js';

/**
 * How a real agent authenticates: with NATS_CREDS, the node's own user (from enrollment), whose
 * permissions let it hear replies only under `_INBOX.node.<id>`; without, no authentication. The
 * inbox prefix is set either way, so the agent behaves the same with and without credentials.
 */
export function agentConnectionOptions(config: Pick<AgentConfig, 'NATS_CREDS' | 'NODE_ID'>): Pick<ConnectionOptions, 'authenticator' | 'inboxPrefix'> {
  if (config.NATS_CREDS === undefined) return { inboxPrefix: nodeInboxPrefix(config.NODE_ID) };
  return nodeConnectionOptions(readFileSync(config.NATS_CREDS), config.NODE_ID);
}

/**
 * A simulated fleet shares one connection for many node ids, so it cannot run as one confined
 * node: with NATS_CREDS it connects as that (service-like) user.
 */
export function fleetConnectionOptions(config: Pick<AgentConfig, 'NATS_CREDS'>): Pick<ConnectionOptions, 'authenticator'> {
  return config.NATS_CREDS === undefined ? {} : serviceConnectionOptions(readFileSync(config.NATS_CREDS));
}

import type { NatsConnection } from '@nats-io/transport-node';
import { GetPackagesReply, isChangeoverError, subjects, type PackageRef } from '@changeover/contracts';
import { requestRpc } from '@changeover/messaging';
import type { ManifestSource } from '../core/ports.js';

/**
 * Asks the registry (which keeps old versions) for a signed manifest, on the node's own subject
 * `changeover.agent.<node>.get-packages`: the only subjects a confined node may publish to.
 */
export function registryManifests(nc: NatsConnection, nodeId: string, timeoutMs: number): ManifestSource {
  const subject = subjects.agentRequest(nodeId, 'get-packages');
  return {
    async get(ref: PackageRef) {
      try {
        const reply = await requestRpc(nc, subject, { packages: [ref] }, GetPackagesReply, { timeoutMs });
        return reply.packages.find((p) => p.manifest.name === ref.name && p.manifest.version === ref.version) ?? null;
      } catch (e) {
        if (isChangeoverError(e, 'NOT_FOUND')) return null;
        throw e;
      }
    },
  };
}

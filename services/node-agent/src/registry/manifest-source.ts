import type { NatsConnection } from '@nats-io/transport-node';
import { GetPackagesReply, isChangeoverError, subjects, type PackageRef } from '@changeover/contracts';
import { requestRpc } from '@changeover/messaging';
import type { ManifestSource } from '../core/ports.js';

/** Asks the registry (which keeps old versions) for a signed manifest. */
export function registryManifests(nc: NatsConnection, timeoutMs: number): ManifestSource {
  return {
    async get(ref: PackageRef) {
      try {
        const reply = await requestRpc(nc, subjects.registry('get-packages'), { packages: [ref] }, GetPackagesReply, { timeoutMs });
        return reply.packages.find((p) => p.manifest.name === ref.name && p.manifest.version === ref.version) ?? null;
      } catch (e) {
        if (isChangeoverError(e, 'NOT_FOUND')) return null;
        throw e;
      }
    },
  };
}

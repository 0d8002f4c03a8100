import type { NatsConnection } from '@nats-io/transport-node';
import { deleteImageUpload, putImageUpload, requestRpc } from '@changeover/messaging';
import type { z } from 'zod';
import { GetPackagesReply, ImportImageReply, SelectModulesReply, subjects, type PackageRef, type SignedPackage } from '@changeover/contracts';

/** The registry as the rollout service uses it (request/reply over NATS). */
export interface RegistryPort {
  selectModules(req: { packages: PackageRef[]; nodes?: string[]; classes?: string[] }): Promise<z.infer<typeof SelectModulesReply>>;
  getPackages(packages: PackageRef[]): Promise<SignedPackage[]>;
  /** The image goes into the upload object store in chunks; the request only names it. */
  importImage(image: Uint8Array | AsyncIterable<Uint8Array>): Promise<z.infer<typeof ImportImageReply>>;
}

export function natsRegistry(nc: NatsConnection, timeoutMs: number): RegistryPort {
  return {
    selectModules: (req) => requestRpc(nc, subjects.registry('select-modules'), { packages: req.packages, nodes: req.nodes ?? [], classes: req.classes ?? [] }, SelectModulesReply, { timeoutMs }),
    getPackages: async (packages) => (await requestRpc(nc, subjects.registry('get-packages'), { packages }, GetPackagesReply, { timeoutMs })).packages,
    importImage: async (image) => {
      const upload = await putImageUpload(nc, image);
      try {
        return await requestRpc(nc, subjects.registry('import-image'), { upload }, ImportImageReply, { timeoutMs });
      } finally {
        // The registry drops the upload once read; this covers a registry that never answered.
        await deleteImageUpload(nc, upload).catch(() => undefined);
      }
    },
  };
}

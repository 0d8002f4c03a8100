import type { NatsConnection } from '@nats-io/transport-node';
import { discardImageUpload, putImageUpload, requestRpc } from '@changeover/messaging';
import type { Logger } from '@changeover/telemetry';
import type { z } from 'zod';
import { ClassRecord, GetPackagesReply, isChangeoverError, ImportImageReply, ProvidedApisReply, SelectModulesReply, subjects, type PackageRef, type SignedPackage } from '@changeover/contracts';

/** The registry as the rollout service uses it (request/reply over NATS). */
export interface RegistryPort {
  selectModules(req: { packages: PackageRef[]; nodes?: string[]; classes?: string[] }): Promise<z.infer<typeof SelectModulesReply>>;
  getPackages(packages: PackageRef[]): Promise<SignedPackage[]>;
  /** The image goes into the upload object store in chunks; the request only names it. */
  importImage(image: Uint8Array | AsyncIterable<Uint8Array>): Promise<z.infer<typeof ImportImageReply>>;
  /** A class's desired packages; null for a class the registry does not know. */
  classPackages(classId: string): Promise<PackageRef[] | null>;
  /** The `api@version` active nodes outside the given scope provide, for the consumed APIs' names. */
  providedApis(req: { consumes: string[]; excludeClasses: string[]; excludeNodes: string[] }): Promise<string[]>;
}

export function natsRegistry(nc: NatsConnection, timeoutMs: number, log: Pick<Logger, 'warn'>): RegistryPort {
  return {
    selectModules: (req) => requestRpc(nc, subjects.registry('select-modules'), { packages: req.packages, nodes: req.nodes ?? [], classes: req.classes ?? [] }, SelectModulesReply, { timeoutMs }),
    getPackages: async (packages) => (await requestRpc(nc, subjects.registry('get-packages'), { packages }, GetPackagesReply, { timeoutMs })).packages,
    importImage: async (image) => {
      const upload = await putImageUpload(nc, image);
      try {
        return await requestRpc(nc, subjects.registry('import-image'), { upload }, ImportImageReply, { timeoutMs });
      } finally {
        // The registry drops the upload once read; this covers a registry that never answered.
        await discardImageUpload(nc, upload, log);
      }
    },
    providedApis: async (req) => (await requestRpc(nc, subjects.registry('provided-apis'), req, ProvidedApisReply, { timeoutMs })).provided,
    classPackages: async (classId) => {
      try {
        return (await requestRpc(nc, subjects.registry('get-class'), { classId }, ClassRecord, { timeoutMs })).packages;
      } catch (e) {
        if (isChangeoverError(e, 'NOT_FOUND')) return null;
        throw e;
      }
    },
  };
}

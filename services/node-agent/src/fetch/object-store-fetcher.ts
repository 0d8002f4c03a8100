import type { NatsConnection } from '@nats-io/transport-node';
import { ChangeoverError, isChangeoverError, MODULE_BUCKET, type Module } from '@changeover/contracts';
import { readObjectChunks } from '@changeover/nats-auth';
import type { ModuleFetcher } from '../core/ports.js';
import type { FsStore } from '../store/fs-store.js';
import { writeVerifiedBlob } from './verified-blob.js';

/**
 * Fetches module blobs from the JetStream object store (object name = digest) into the local
 * store, with the message-get API only (`readObjectChunks`): a confined node may not create
 * consumers. The blob is streamed to disk chunk by chunk and checked against the signed manifest's
 * digest and size on the way; only a blob that matches becomes the store's file (`writeVerifiedBlob`).
 */
export class ObjectStoreFetcher implements ModuleFetcher {
  constructor(
    private readonly nc: NatsConnection,
    private readonly store: FsStore,
    private readonly opts: { timeoutMs?: number } = {},
  ) {}

  async fetch(m: Module): Promise<number> {
    const chunks = readObjectChunks(this.nc, m.digest, { bucket: MODULE_BUCKET, maxBytes: m.size, ...(this.opts.timeoutMs ? { timeoutMs: this.opts.timeoutMs } : {}) });
    try {
      return await writeVerifiedBlob(this.store.blobPath(m.digest), { digest: m.digest, size: m.size }, chunks);
    } catch (e) {
      if (isChangeoverError(e, 'NOT_FOUND')) throw new ChangeoverError('NOT_FOUND', `module ${m.name}@${m.version} (${m.digest}) is not in the object store`);
      throw e;
    }
  }
}

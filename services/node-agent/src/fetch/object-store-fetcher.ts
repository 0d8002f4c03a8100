import type { NatsConnection } from '@nats-io/transport-node';
import { ChangeoverError, isChangeoverError, MODULE_BUCKET, type Module } from '@changeover/contracts';
import { readObject } from '@changeover/nats-auth';
import type { ModuleFetcher } from '../core/ports.js';
import type { FsStore } from '../store/fs-store.js';

/**
 * Fetches module blobs from the JetStream object store (object name = digest) into the local
 * store, with the message-get API only (`readObject`): a confined node may not create consumers.
 * The local store checks the blob against the signed manifest's digest before keeping it.
 */
export class ObjectStoreFetcher implements ModuleFetcher {
  constructor(
    private readonly nc: NatsConnection,
    private readonly store: FsStore,
    private readonly opts: { timeoutMs?: number } = {},
  ) {}

  async fetch(m: Module): Promise<number> {
    let bytes: Uint8Array;
    try {
      bytes = await readObject(this.nc, m.digest, { bucket: MODULE_BUCKET, maxBytes: m.size, ...(this.opts.timeoutMs ? { timeoutMs: this.opts.timeoutMs } : {}) });
    } catch (e) {
      if (isChangeoverError(e, 'NOT_FOUND')) throw new ChangeoverError('NOT_FOUND', `module ${m.name}@${m.version} (${m.digest}) is not in the object store`);
      throw e;
    }
    await this.store.putBlob(m.digest, bytes);
    return bytes.length;
  }
}

import type { NatsConnection } from '@nats-io/transport-node';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { ChangeoverError, MODULE_BUCKET, type Module } from '@changeover/contracts';
import type { ModuleFetcher } from '../core/ports.js';
import type { FsStore } from '../store/fs-store.js';

/** Fetches module blobs from the JetStream object store (object name = digest) into the local store. */
export class ObjectStoreFetcher implements ModuleFetcher {
  private bucket?: Promise<ObjectStore>;

  constructor(
    private readonly nc: NatsConnection,
    private readonly store: FsStore,
  ) {}

  async fetch(m: Module): Promise<number> {
    this.bucket ??= new Objm(this.nc).open(MODULE_BUCKET);
    let bytes: Uint8Array | null;
    try {
      bytes = await (await this.bucket).getBlob(m.digest);
    } catch (e) {
      this.bucket = undefined;
      throw new ChangeoverError('UNAVAILABLE', `object store ${MODULE_BUCKET}: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (!bytes) throw new ChangeoverError('NOT_FOUND', `module ${m.name}@${m.version} (${m.digest}) is not in the object store`);
    await this.store.putBlob(m.digest, bytes);
    return bytes.length;
  }
}

import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { Objm, type ObjectStore } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { reconcileReplicas, retryDuringFailover } from '@changeover/messaging';
import { ChangeoverError, Digest, MODULE_BUCKET, parse } from '@changeover/contracts';

const sha256Hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Module blobs in a JetStream object store, named by their digest (identical modules stored once). */
export class BlobStore {
  // One writer per digest in this process: two uploads of the same module do not race each other.
  private readonly writing = new Map<string, Promise<unknown>>();

  private constructor(private readonly os: ObjectStore) {}

  /** `replicas`: NATS_STREAM_REPLICAS; a bucket created with other replicas has its stream moved to this many. */
  static async open(nc: NatsConnection, bucket = MODULE_BUCKET, replicas = 1): Promise<BlobStore> {
    const os = await new Objm(nc).create(bucket, { description: 'Changeover module blobs, named by sha256 digest', replicas });
    // create() opens an existing bucket as it is: its replicas are reconciled on the stream under it.
    const jsm = await jetstreamManager(nc);
    await reconcileReplicas(jsm, await jsm.streams.info(`OBJ_${bucket}`), replicas);
    return new BlobStore(os);
  }

  /** The stored size, or null when the blob is absent. */
  async size(digest: string): Promise<number | null> {
    const info = await retryDuringFailover(`reading blob ${digest}`, () => this.os.info(digest));
    return info && !info.deleted ? info.size : null;
  }

  /** Stores bytes already in memory under their digest after checking it. Returns whether it was new. */
  async putBytes(digest: string, bytes: Uint8Array, maxBytes: number): Promise<boolean> {
    parse(Digest, digest, 'digest');
    if (bytes.length > maxBytes) throw tooLarge(digest, maxBytes);
    const actual = `sha256:${sha256Hex(bytes)}`;
    if (actual !== digest) throw mismatch(digest, actual);
    return this.store(digest, () => Readable.from([bytes]));
  }

  /**
   * Streams a file spooled by the image reader into the store, hashing it again on the way: the
   * object under the digest name is only kept if the bytes sent are the bytes named.
   */
  async putFile(digest: string, blob: { file: string; size: number }, maxBytes: number): Promise<boolean> {
    parse(Digest, digest, 'digest');
    if (blob.size > maxBytes) throw tooLarge(digest, maxBytes);
    return this.store(digest, () => hashed(createReadStream(blob.file), digest));
  }

  /**
   * Streams an upload to a temporary file while hashing it, and stores it under the digest only when
   * the digest matches and the size is within the limit. Returns whether it was new.
   */
  async putStream(digest: string, source: AsyncIterable<Uint8Array>, maxBytes: number): Promise<boolean> {
    parse(Digest, digest, 'digest');
    const tmp = join(tmpdir(), `changeover-blob-${randomUUID()}`);
    try {
      const hash = createHash('sha256');
      const out = createWriteStream(tmp);
      let size = 0;
      try {
        for await (const chunk of source) {
          size += chunk.length;
          if (size > maxBytes) throw tooLarge(digest, maxBytes);
          hash.update(chunk);
          if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
        }
      } finally {
        out.end();
        await finished(out).catch(() => undefined);
      }
      const actual = `sha256:${hash.digest('hex')}`;
      if (actual !== digest) throw mismatch(digest, actual);
      return await this.store(digest, () => createReadStream(tmp));
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** The blob's bytes as a stream, or null. */
  async get(digest: string): Promise<{ size: number; stream: Readable } | null> {
    const result = await retryDuringFailover(`reading blob ${digest}`, () => this.os.get(digest));
    if (!result) return null;
    return { size: result.info.size, stream: Readable.fromWeb(result.data as import('node:stream/web').ReadableStream<Uint8Array>) };
  }

  async delete(digest: string): Promise<void> {
    await retryDuringFailover(`deleting blob ${digest}`, () => this.os.delete(digest)).catch((e: unknown) => {
      if (!/not found/i.test(String(e))) throw e;
    });
  }

  /** Every stored digest (tests and garbage collection). */
  async list(): Promise<string[]> {
    return (await retryDuringFailover('listing blobs', () => this.os.list())).filter((i) => !i.deleted).map((i) => i.name);
  }

  private async store(digest: string, open: () => Readable): Promise<boolean> {
    const prior = this.writing.get(digest);
    if (prior) await prior.catch(() => undefined);
    const work = (async () => {
      if ((await this.size(digest)) !== null) return false;
      try {
        // A put cut by a leader change is written again whole (the same name replaces the partial object).
        await retryDuringFailover(`storing blob ${digest}`, () => this.os.put({ name: digest }, Readable.toWeb(open()) as unknown as ReadableStream<Uint8Array>));
      } catch (e) {
        // Never leave a half-written object under a digest name.
        await this.delete(digest).catch(() => undefined);
        throw new ChangeoverError('UNAVAILABLE', `storing blob ${digest} failed: ${(e as Error).message}`);
      }
      return true;
    })();
    this.writing.set(digest, work);
    try {
      return await work;
    } finally {
      if (this.writing.get(digest) === work) this.writing.delete(digest);
    }
  }
}

/** Passes the bytes through, failing the stream at its end if they do not hash to the digest. */
function hashed(source: Readable, digest: string): Readable {
  return Readable.from(
    (async function* () {
      const hash = createHash('sha256');
      for await (const chunk of source as AsyncIterable<Buffer>) {
        hash.update(chunk);
        yield chunk;
      }
      const actual = `sha256:${hash.digest('hex')}`;
      if (actual !== digest) throw mismatch(digest, actual);
    })(),
  );
}

const tooLarge = (digest: string, maxBytes: number) => new ChangeoverError('TOO_LARGE', `blob ${digest} is over the module size limit of ${maxBytes} bytes`, { digest, limit: maxBytes });
const mismatch = (digest: string, actual: string) => new ChangeoverError('DIGEST_MISMATCH', `blob content hashes to ${actual}, not ${digest}`, { digest, actual });

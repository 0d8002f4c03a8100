import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Objm, type ObjectStore } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '@changeover/telemetry';
import { ChangeoverError, IMAGE_UPLOAD_BUCKET } from '@changeover/contracts';
import { reconcileReplicas } from './streams.js';

// Update images travel to the registry through a JetStream object store, in chunks: the uploader
// never builds one message holding the image, and the registry reads it back chunk by chunk.

/** Uploads nobody imported (a client that died between put and import) expire after this long. */
const UPLOAD_TTL_NS = 6 * 60 * 60 * 1e9;
/** Chunks the reader holds at once: what bounds the registry's memory while it reads an upload. */
const READ_AHEAD_CHUNKS = 8;

export async function openImageUploads(nc: NatsConnection, bucket = IMAGE_UPLOAD_BUCKET, replicas?: number): Promise<ObjectStore> {
  const os = await new Objm(nc).create(bucket, { description: 'Changeover update images awaiting import', ttl: UPLOAD_TTL_NS, ...(replicas ? { replicas } : {}) });
  // create() opens an existing bucket as it is: the owner (the registry) reconciles the replicas of the stream under it.
  if (replicas) {
    const jsm = await jetstreamManager(nc);
    await reconcileReplicas(jsm, await jsm.streams.info(`OBJ_${bucket}`), replicas);
  }
  return os;
}

/** Puts an image (bytes or a stream) into the upload bucket; returns the name to pass to import-image. */
export async function putImageUpload(nc: NatsConnection, image: Uint8Array | AsyncIterable<Uint8Array>, opts: { bucket?: string; name?: string } = {}): Promise<string> {
  const os = await openImageUploads(nc, opts.bucket ?? IMAGE_UPLOAD_BUCKET);
  const name = opts.name ?? `image-${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
  const source = image instanceof Uint8Array ? Readable.from([image]) : Readable.from(image);
  await os.put({ name }, Readable.toWeb(source) as unknown as ReadableStream<Uint8Array>);
  return name;
}

export async function deleteImageUpload(nc: NatsConnection, name: string, bucket = IMAGE_UPLOAD_BUCKET): Promise<void> {
  const os = await openImageUploads(nc, bucket);
  await os.delete(name).catch((e: unknown) => {
    if (!/not found/i.test(String(e))) throw e;
  });
}

/**
 * Drops an upload once its import is over, whatever its outcome. It never throws: the import's own
 * result is what the caller returns, so a failed delete is logged and the upload left to its TTL.
 */
export async function discardImageUpload(nc: NatsConnection, name: string, log: Pick<Logger, 'warn'>, bucket = IMAGE_UPLOAD_BUCKET): Promise<void> {
  try {
    await deleteImageUpload(nc, name, bucket);
  } catch (err) {
    log.warn({ err, upload: name, bucket }, 'image upload not deleted; it expires with the bucket TTL');
  }
}

/**
 * Reads an upload chunk by chunk through a pull consumer (at most READ_AHEAD_CHUNKS in flight; the
 * object store's own get pushes the whole object at the reader's memory), checking its digest.
 */
export async function* readImageUpload(nc: NatsConnection, name: string, bucket = IMAGE_UPLOAD_BUCKET): AsyncGenerator<Uint8Array> {
  const os = await openImageUploads(nc, bucket);
  const info = await os.info(name);
  if (!info || info.deleted) throw new ChangeoverError('NOT_FOUND', `no upload ${name} in ${bucket}`, { upload: name });
  if (info.size === 0) return;
  const stream = `OBJ_${bucket}`;
  const jsm = await jetstreamManager(nc);
  const consumer = await jsm.consumers.add(stream, {
    filter_subject: `$O.${bucket}.C.${info.nuid}`,
    ack_policy: AckPolicy.None,
    deliver_policy: DeliverPolicy.All,
    inactive_threshold: 60_000 * 1e6,
    mem_storage: true,
  });
  const hash = createHash('sha256');
  let size = 0;
  const messages = await (await jetstream(nc).consumers.get(stream, consumer.name)).consume({ max_messages: READ_AHEAD_CHUNKS });
  try {
    for await (const m of messages) {
      size += m.data.length;
      hash.update(m.data);
      yield m.data;
      if (m.info.pending === 0) break;
    }
  } finally {
    messages.stop();
    await jsm.consumers.delete(stream, consumer.name).catch(() => undefined);
  }
  const digest = `SHA-256=${hash.digest('base64url')}`;
  if (size !== info.size || digest.replace(/=+$/, '') !== info.digest.replace(/=+$/, '')) {
    throw new ChangeoverError('DIGEST_MISMATCH', `upload ${name}: read ${size} bytes hashing to ${digest}, the object store recorded ${info.size} bytes and ${info.digest}`, { upload: name });
  }
}

import { createHash } from 'node:crypto';
import { ClosedConnectionError, type NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { ChangeoverError, MODULE_BUCKET } from '@changeover/contracts';

/** The object's metadata as the nats.js object store writes it (`$O.<bucket>.M.<name>`). */
const ObjectMeta = z.object({
  name: z.string(),
  nuid: z.string().regex(/^[A-Za-z0-9]+$/),
  size: z.number().int().nonnegative(),
  chunks: z.number().int().nonnegative(),
  digest: z.string().optional(),
  deleted: z.boolean().optional(),
  options: z.object({ link: z.unknown().optional() }).passthrough().optional(),
});

const MsgGetReply = z.union([
  z.object({ message: z.object({ subject: z.string(), seq: z.number().int().positive(), data: z.string().optional() }) }),
  z.object({ error: z.object({ code: z.number(), err_code: z.number().optional(), description: z.string().optional() }) }),
]);

export interface ReadObjectOptions {
  bucket?: string;
  /** Per request (the metadata, each chunk), not for the whole object. */
  timeoutMs?: number;
  /** Refuse (TOO_LARGE) an object whose metadata says it is bigger, before reading a chunk. */
  maxBytes?: number;
  /**
   * How long one request is asked again while it gets no answer or JetStream's "unavailable" (a server
   * of the cluster down, the stream electing a leader), before it fails UNAVAILABLE; default 15 s.
   */
  failoverMs?: number;
}

/**
 * Reads one object from an object store with nothing but `$JS.API.STREAM.MSG.GET.OBJ_<bucket>`:
 * the metadata by last-per-subject, then each chunk by next-per-subject. Unlike the nats.js
 * reader it needs no consumer, so a node needs no right to create consumers (a push consumer's
 * deliver subject is not checked against the creator's permissions). Verifies size and SHA-256.
 * Missing or deleted → NOT_FOUND; corrupt → DIGEST_MISMATCH; no answer → UNAVAILABLE.
 * Holds the whole object: for modules of any size use `readObjectChunks`.
 */
export async function readObject(nc: NatsConnection, name: string, opts: ReadObjectOptions = {}): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const chunk of readObjectChunks(nc, name, opts)) parts.push(chunk);
  const data = Buffer.concat(parts);
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

/**
 * `readObject` as a stream: yields the object's chunks in order, holding at most two of them (the
 * next one is asked for while the caller takes the current one), so memory does not grow with the
 * object. The same errors are thrown while iterating; size and SHA-256 are checked as the chunks go
 * by and a mismatch is thrown after the last chunk, so a caller writing them out must keep what it
 * wrote aside until the iteration ends without error.
 */
export async function* readObjectChunks(nc: NatsConnection, name: string, opts: ReadObjectOptions = {}): AsyncGenerator<Uint8Array, void, undefined> {
  const bucket = opts.bucket ?? MODULE_BUCKET;
  const api = `$JS.API.STREAM.MSG.GET.OBJ_${bucket}`;
  const label = JSON.stringify(name.slice(0, 120));
  const failoverMs = opts.failoverMs ?? 15_000;
  // A message get reads by sequence, so asking again is safe: a request that got no answer, or JetStream's
  // 503 while a server is down or the stream elects a leader, is asked again until `failoverMs` has passed.
  const get = async (query: Record<string, unknown>) => {
    const deadline = Date.now() + failoverMs;
    for (let attempt = 1; ; attempt++) {
      let raw: unknown;
      let transient: string;
      try {
        raw = (await nc.request(api, JSON.stringify(query), { timeout: opts.timeoutMs ?? 5_000 })).json();
        const reply = MsgGetReply.safeParse(raw);
        if (!reply.success) throw new ChangeoverError('INTERNAL', `object store ${bucket}: unexpected reply`);
        if (!('error' in reply.data)) return { seq: reply.data.message.seq, data: Buffer.from(reply.data.message.data ?? '', 'base64') };
        if (reply.data.error.code === 404) return null;
        transient = `${reply.data.error.description ?? reply.data.error.code}`;
        if (reply.data.error.code !== 503) throw new ChangeoverError('UNAVAILABLE', `object store ${bucket}: ${transient}`);
      } catch (e) {
        if (e instanceof ChangeoverError) throw e;
        if (e instanceof ClosedConnectionError) throw new ChangeoverError('UNAVAILABLE', `object store ${bucket}: the NATS connection is closed`);
        transient = e instanceof Error ? e.message : String(e);
      }
      const pause = Math.min(200 * attempt, 1000);
      if (Date.now() + pause > deadline) throw new ChangeoverError('UNAVAILABLE', `object store ${bucket}: ${transient} (${attempt} attempts in ${failoverMs} ms)`, { attempts: attempt });
      await new Promise((r) => setTimeout(r, pause));
    }
  };

  const metaMsg = await get({ last_by_subj: `$O.${bucket}.M.${encodeName(name)}` });
  if (!metaMsg) throw new ChangeoverError('NOT_FOUND', `object ${label} is not in ${bucket}`);
  let metaJson: unknown;
  try {
    metaJson = JSON.parse(metaMsg.data.toString('utf8'));
  } catch {
    metaJson = undefined;
  }
  const meta = ObjectMeta.safeParse(metaJson);
  if (!meta.success) throw new ChangeoverError('INTERNAL', `object ${label}: unreadable metadata`);
  const info = meta.data;
  if (info.deleted) throw new ChangeoverError('NOT_FOUND', `object ${label} was deleted from ${bucket}`);
  if (info.options?.link !== undefined) throw new ChangeoverError('VALIDATION_FAILED', `object ${label} is a link; links are not followed`);
  if (opts.maxBytes !== undefined && info.size > opts.maxBytes) throw new ChangeoverError('TOO_LARGE', `object ${label} is ${info.size} bytes (limit ${opts.maxBytes})`);

  const chunkSubject = `$O.${bucket}.C.${info.nuid}`;
  const hash = createHash('sha256');
  let total = 0;
  // Chunks are written before their metadata, so they all sit below the metadata's sequence.
  const chunkAt = async (seq: number, n: number) => {
    const chunk = await get({ seq, next_by_subj: chunkSubject });
    if (!chunk || chunk.seq > metaMsg.seq) throw new ChangeoverError('DIGEST_MISMATCH', `object ${label}: chunk ${n + 1} of ${info.chunks} is missing`);
    return chunk;
  };
  let next = info.chunks > 0 ? chunkAt(1, 0) : null;
  // A prefetch the caller stopped waiting for must not surface as an unhandled rejection.
  void next?.catch(() => undefined);
  for (let n = 0; next; n++) {
    const chunk = await next;
    total += chunk.data.length;
    if (total > info.size) throw new ChangeoverError('DIGEST_MISMATCH', `object ${label}: more than the ${info.size} bytes of its metadata`);
    next = n + 1 < info.chunks ? chunkAt(chunk.seq + 1, n + 1) : null;
    void next?.catch(() => undefined);
    hash.update(chunk.data);
    yield new Uint8Array(chunk.data.buffer, chunk.data.byteOffset, chunk.data.length);
  }
  if (total !== info.size) throw new ChangeoverError('DIGEST_MISMATCH', `object ${label}: ${total} bytes read, ${info.size} expected`);
  if (info.digest !== undefined) {
    const expected = info.digest.replace(/^SHA-256=/i, '');
    if (toStdBase64(expected) !== hash.digest('base64')) throw new ChangeoverError('DIGEST_MISMATCH', `object ${label}: SHA-256 does not match its metadata`);
  }
}

/** The object store's subject token for a name: padded base64 with the URL alphabet. */
export function encodeName(name: string): string {
  return Buffer.from(name, 'utf8').toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
}

function toStdBase64(s: string): string {
  return s.replace(/-/g, '+').replace(/_/g, '/');
}

import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { ChangeoverError, ErrorBody } from '@changeover/contracts';

/** A small REST client: bearer token, JSON in and out, typed errors from ErrorBody answers. */
export class RestClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined,
    private readonly fetchImpl: typeof fetch = fetch,
    /** No answer within this many milliseconds: TIMEOUT. */
    private readonly timeoutMs = 30_000,
  ) {}

  /** `raw.file`: the body is streamed from that file (an update image), never read whole. */
  async request<T>(method: string, path: string, body?: unknown, raw?: { data: Uint8Array; contentType: string } | { file: string; contentType: string }): Promise<T> {
    const headers: Record<string, string> = {};
    if (this.token) headers['authorization'] = `Bearer ${this.token}`;
    let payload: Uint8Array | string | ReadableStream | undefined;
    if (raw) {
      headers['content-type'] = raw.contentType;
      if ('file' in raw) {
        headers['content-length'] = String((await stat(raw.file)).size);
        payload = Readable.toWeb(createReadStream(raw.file)) as unknown as ReadableStream;
      } else payload = raw.data;
    } else if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res: Response;
    try {
      res = await this.fetchImpl(new URL(path, this.baseUrl), { method, headers, signal: AbortSignal.timeout(this.timeoutMs), ...(payload !== undefined ? { body: payload } : {}), ...(payload instanceof ReadableStream ? { duplex: 'half' } : {}) } as RequestInit);
    } catch (e) {
      if (e instanceof DOMException && e.name === 'TimeoutError') throw new ChangeoverError('TIMEOUT', `${method} ${path}: no answer from ${this.baseUrl} within ${this.timeoutMs} ms`);
      throw new ChangeoverError('UNAVAILABLE', `cannot reach ${this.baseUrl}: ${e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e)}`);
    }
    const text = await res.text();
    let json: unknown = undefined;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      if (!res.ok) throw new ChangeoverError('INTERNAL', `${method} ${path}: HTTP ${res.status}`);
    }
    if (!res.ok) {
      const parsed = ErrorBody.safeParse(json);
      throw parsed.success ? ChangeoverError.fromBody(parsed.data) : new ChangeoverError('INTERNAL', `${method} ${path}: HTTP ${res.status}`);
    }
    return json as T;
  }
}

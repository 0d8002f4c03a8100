import type { IncomingMessage, ServerResponse } from 'node:http';
import { ArgumentsHost, Catch, HttpException, type ExceptionFilter, type PipeTransform } from '@nestjs/common';
import type { z } from 'zod';
import { ChangeoverError, HTTP_STATUS, parse, type ErrorBody, type ErrorCode } from '@changeover/contracts';
import type { Counters, Logger } from '../observability.js';
import { assertStorable } from '../validation/storable.js';

/** Validates a body, query or parameter with a contract schema; a failure is VALIDATION_FAILED naming the field. */
export class ZodPipe<S extends z.ZodType> implements PipeTransform<unknown, z.infer<S>> {
  constructor(
    private readonly schema: S,
    private readonly what = 'request',
  ) {}

  transform(value: unknown): z.infer<S> {
    const parsed = parse(this.schema, value, this.what);
    assertStorable(parsed, this.what);
    return parsed;
  }
}

const STATUS_CODES: Partial<Record<number, ErrorCode>> = { 400: 'VALIDATION_FAILED', 401: 'UNAUTHENTICATED', 403: 'FORBIDDEN', 404: 'NOT_FOUND', 409: 'CONFLICT', 413: 'TOO_LARGE', 429: 'RATE_LIMITED' };

/** Maps any error to the ErrorBody shape: ChangeoverError by HTTP_STATUS, Nest's own exceptions by status. */
export function toErrorResponse(err: unknown): { status: number; body: ErrorBody } {
  if (err instanceof ChangeoverError) return { status: HTTP_STATUS[err.code], body: err.toBody() };
  if (err instanceof HttpException) {
    const status = err.getStatus();
    return { status, body: { code: STATUS_CODES[status] ?? (status >= 500 ? 'INTERNAL' : 'VALIDATION_FAILED'), message: err.message } };
  }
  // Postgres cancelled a statement past statement_timeout (CHANGEOVER_DB_STATEMENT_TIMEOUT_MS).
  if ((err as { code?: unknown } | undefined)?.code === '57014') return { status: 504, body: { code: 'TIMEOUT', message: 'the database did not answer in time' } };
  return { status: 500, body: { code: 'INTERNAL', message: 'internal error' } };
}

/** The one exception filter of the REST API. */
@Catch()
export class ErrorFilter implements ExceptionFilter {
  constructor(
    private readonly counters: Counters,
    private readonly log: Logger,
  ) {}

  catch(err: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<ServerResponse>();
    const { status, body } = toErrorResponse(err);
    if (status >= 500) this.log.error({ err }, 'request failed');
    this.counters.inc('registry_requests_rejected_total', 1, { code: body.code });
    sendJson(res, status, body);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return void res.destroy();
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Reads a whole request body, refusing it with TOO_LARGE past `maxBytes`. */
export async function readBody(req: AsyncIterable<Uint8Array> & { headers?: IncomingMessage['headers'] }, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers?.['content-length'] ?? 0);
  if (declared > maxBytes) throw new ChangeoverError('TOO_LARGE', `request body of ${declared} bytes exceeds the limit of ${maxBytes}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > maxBytes) throw new ChangeoverError('TOO_LARGE', `request body exceeds the limit of ${maxBytes} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

/** JSON body parsing whose failures get the ErrorBody shape (Nest's parser errors bypass exception filters). */
export function jsonBodyMiddleware(maxBytes: number, counters: Counters) {
  return (req: IncomingMessage & { body?: unknown }, res: ServerResponse, next: () => void) => {
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) return next();
    readBody(req, maxBytes)
      .then((buf) => {
        try {
          req.body = buf.length === 0 ? {} : JSON.parse(buf.toString('utf8'));
        } catch {
          throw new ChangeoverError('VALIDATION_FAILED', 'request body is not valid JSON');
        }
        next();
      })
      .catch((err: unknown) => {
        const { status, body } = toErrorResponse(err);
        counters.inc('registry_requests_rejected_total', 1, { code: body.code });
        sendJson(res, status, body);
      });
  };
}

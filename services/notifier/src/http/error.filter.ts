import { Catch, HttpException, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { ChangeoverError, HTTP_STATUS, type ErrorBody, type ErrorCode } from '@changeover/contracts';
import type { Logger } from '../log.js';
import type { NotifierMetrics } from '../metrics.js';

interface HttpResponse {
  status(code: number): HttpResponse;
  json(body: unknown): void;
  headersSent?: boolean;
}

const CODE_OF_STATUS: Record<number, ErrorCode> = { 400: 'VALIDATION_FAILED', 404: 'NOT_FOUND', 405: 'VALIDATION_FAILED', 413: 'TOO_LARGE', 415: 'VALIDATION_FAILED' };

/** Turns any error into the one ErrorBody shape; domain codes map through HTTP_STATUS. */
export function toErrorBody(e: unknown): { status: number; body: ErrorBody } {
  if (e instanceof ChangeoverError) return { status: HTTP_STATUS[e.code], body: e.toBody() };
  if (e instanceof HttpException) {
    const status = e.getStatus();
    return { status, body: { code: CODE_OF_STATUS[status] ?? (status < 500 ? 'VALIDATION_FAILED' : 'INTERNAL'), message: e.message } };
  }
  // Body-parser errors carry their status (bad JSON → 400, too large → 413).
  const status = (e as { status?: unknown })?.status;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return { status, body: { code: CODE_OF_STATUS[status] ?? 'VALIDATION_FAILED', message: status === 400 ? 'request body is not valid JSON' : String((e as Error).message) } };
  }
  // Postgres cancelled a statement past statement_timeout (CHANGEOVER_DB_STATEMENT_TIMEOUT_MS); TypeORM keeps the code.
  const pg = (e as { code?: unknown; driverError?: { code?: unknown } } | undefined);
  if (pg?.code === '57014' || pg?.driverError?.code === '57014') return { status: 504, body: { code: 'TIMEOUT', message: 'the database did not answer in time' } };
  return { status: 500, body: { code: 'INTERNAL', message: 'internal error' } };
}

@Catch()
export class ErrorFilter implements ExceptionFilter {
  constructor(
    private readonly metrics: NotifierMetrics,
    private readonly log: Logger,
  ) {}

  catch(e: unknown, host: ArgumentsHost): void {
    const { status, body } = toErrorBody(e);
    this.metrics.requestErrors.inc({ code: body.code });
    if (status >= 500) this.log.error('request failed', { error: e instanceof Error ? e.stack : String(e) });
    const res = host.switchToHttp().getResponse<HttpResponse>();
    if (!res.headersSent) res.status(status).json(body);
  }
}

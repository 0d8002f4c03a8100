import { Catch, HttpException, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import { HTTP_STATUS, isChangeoverError, type ErrorBody } from '@changeover/contracts';
import { metrics } from '@changeover/telemetry';

const httpErrors = metrics.counter({ name: 'changeover_rollout_http_errors_total', help: 'REST requests refused, by error code', labelNames: ['code'] as const });

/** Any error as a status and an ErrorBody: domain codes by the code table, Nest's and the body parser's by status. */
export function toErrorBody(error: unknown): { status: number; body: ErrorBody } {
  if (isChangeoverError(error)) return { status: HTTP_STATUS[error.code], body: error.toBody() };
  if (error instanceof HttpException) {
    const status = error.getStatus();
    const code = status === 404 ? 'NOT_FOUND' : status === 413 ? 'TOO_LARGE' : status < 500 ? 'VALIDATION_FAILED' : 'INTERNAL';
    return { status, body: { code, message: status === 400 ? `invalid request: ${error.message}` : error.message } };
  }
  const e = error as { type?: string; status?: number; code?: string } | undefined;
  if (error instanceof SyntaxError || e?.type === 'entity.parse.failed') return { status: 400, body: { code: 'VALIDATION_FAILED', message: 'invalid request: body is not JSON' } };
  if (e?.type === 'entity.too.large' || e?.status === 413) return { status: 413, body: { code: 'TOO_LARGE', message: 'request body exceeds the limit (ROLLOUT_MAX_BODY_BYTES)' } };
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) return { status: e.status, body: { code: 'VALIDATION_FAILED', message: `invalid request body (${e.type ?? e.status})` } };
  // Postgres cancelled a statement past statement_timeout.
  if (e?.code === '57014') return { status: 504, body: { code: 'TIMEOUT', message: 'the database did not answer in time' } };
  return { status: 500, body: { code: 'INTERNAL', message: 'internal error' } };
}

function send(res: ServerResponse, status: number, body: ErrorBody): void {
  httpErrors.inc({ code: body.code });
  if (res.headersSent) return void res.destroy();
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(body));
}

/** The one adapter from domain errors to HTTP: status from the code table, body in the ErrorBody shape. */
@Catch()
export class ErrorFilter implements ExceptionFilter {
  catch(error: unknown, host: ArgumentsHost): void {
    const { status, body } = toErrorBody(error);
    send(host.switchToHttp().getResponse<ServerResponse>(), status, body);
  }
}

/** Express error middleware (four parameters): body-parser failures happen before any route and the filter. */
export function bodyErrors(err: unknown, _req: unknown, res: ServerResponse, _next: unknown): void {
  const { status, body } = toErrorBody(err);
  send(res, status, body);
}

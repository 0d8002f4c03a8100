import { Catch, HttpException, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import { HTTP_STATUS, isChangeoverError, type ErrorBody } from '@changeover/contracts';
import { metrics } from '@changeover/telemetry';

const httpErrors = metrics.counter({ name: 'changeover_rollout_http_errors_total', help: 'REST requests refused, by error code', labelNames: ['code'] as const });

/** The one adapter from domain errors to HTTP: status from the code table, body in the ErrorBody shape. */
@Catch()
export class ErrorFilter implements ExceptionFilter {
  catch(error: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<ServerResponse>();
    let status = 500;
    let body: ErrorBody = { code: 'INTERNAL', message: 'internal error' };
    if (isChangeoverError(error)) {
      status = HTTP_STATUS[error.code];
      body = error.toBody();
    } else if (error instanceof HttpException) {
      status = error.getStatus();
      const code = status === 404 ? 'NOT_FOUND' : status === 413 ? 'TOO_LARGE' : status < 500 ? 'VALIDATION_FAILED' : 'INTERNAL';
      body = { code, message: status === 400 ? `invalid request: ${error.message}` : error.message };
    } else if (error instanceof SyntaxError || (error as { type?: string })?.type === 'entity.parse.failed') {
      status = 400;
      body = { code: 'VALIDATION_FAILED', message: 'invalid request: body is not JSON' };
    }
    httpErrors.inc({ code: body.code });
    res.statusCode = status;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(body));
  }
}

import { createLogger as createJsonLogger } from '@changeover/telemetry';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** The shared JSON logger (lines carry the trace id), with message-first calls. */
export function createLogger(level: string): Logger {
  const log = createJsonLogger('notifier', { level });
  return {
    debug: (msg, fields = {}) => log.debug(fields, msg),
    info: (msg, fields = {}) => log.info(fields, msg),
    warn: (msg, fields = {}) => log.warn(fields, msg),
    error: (msg, fields = {}) => log.error(fields, msg),
  };
}

type ErrorLike = { message: string; name?: string; code?: string; cause?: unknown };
const isErrorLike = (e: unknown): e is ErrorLike => typeof e === 'object' && e !== null && typeof (e as ErrorLike).message === 'string';

/** An error's message with its cause (fetch hides the socket error there); duck-typed across realms. */
export const errorText = (e: unknown): string => {
  if (!isErrorLike(e)) return String(e);
  const cause = isErrorLike(e.cause) ? `${e.cause.code ?? e.cause.name ?? 'Error'}: ${e.cause.message}` : '';
  return cause ? `${e.message} (${cause})` : e.message;
};

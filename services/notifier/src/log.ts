type Level = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** Structured JSON lines on stdout, one per record. */
export function createLogger(level: Level, service = 'notifier'): Logger {
  const at = (l: Exclude<Level, 'silent'>) => (msg: string, fields: Record<string, unknown> = {}) => {
    if (RANK[l] < RANK[level]) return;
    process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), level: l, service, msg, ...fields })}\n`);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

type ErrorLike = { message: string; name?: string; code?: string; cause?: unknown };
const isErrorLike = (e: unknown): e is ErrorLike => typeof e === 'object' && e !== null && typeof (e as ErrorLike).message === 'string';

/** An error's message with its cause (fetch hides the socket error there); duck-typed across realms. */
export const errorText = (e: unknown): string => {
  if (!isErrorLike(e)) return String(e);
  const cause = isErrorLike(e.cause) ? `${e.cause.code ?? e.cause.name ?? 'Error'}: ${e.cause.message}` : '';
  return cause ? `${e.message} (${cause})` : e.message;
};

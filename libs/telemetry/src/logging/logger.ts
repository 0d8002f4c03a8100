import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { ChangeoverError } from '@changeover/contracts';
import { currentTraceIds } from '../tracing/trace-context.js';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

function levelFrom(value: string | undefined, source: string): LogLevel {
  const level = (value ?? 'info').trim().toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(level)) return level as LogLevel;
  throw new ChangeoverError('VALIDATION_FAILED', `${source} must be one of ${LOG_LEVELS.join(', ')} (got ${JSON.stringify(String(value).slice(0, 40))})`);
}

export interface CreateLoggerOptions {
  /** Default: LOG_LEVEL, else info. */
  level?: string;
  /** Where lines go (default stdout); tests pass a stream to read them back. */
  destination?: DestinationStream;
}

/**
 * A JSON logger named after the part that logs. Every line written inside an active span carries
 * `trace_id` and `span_id`, so logs and traces join up.
 */
export function createLogger(name: string, opts: CreateLoggerOptions = {}): Logger {
  if (typeof name !== 'string' || !/^[A-Za-z0-9_.:/-]{1,64}$/.test(name)) throw new ChangeoverError('VALIDATION_FAILED', 'logger name must match [A-Za-z0-9_.:/-]{1,64}');
  const level = opts.level !== undefined ? levelFrom(opts.level, 'log level') : levelFrom(process.env['LOG_LEVEL'], 'LOG_LEVEL');
  const options: LoggerOptions = {
    name,
    level,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin: () => {
      const ids = currentTraceIds();
      return ids ? { trace_id: ids.traceId, span_id: ids.spanId } : {};
    },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

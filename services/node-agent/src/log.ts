import { createLogger, type Logger } from '@changeover/telemetry';
import type { Log } from './core/ports.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

/**
 * The agent's log: pino JSON lines on stderr (stdout carries the ready line scripts wait for).
 * A line written while a command of a rollout runs carries that rollout's `trace_id` and `span_id`.
 */
export function createLog(level: LogLevel, base: Record<string, unknown> = {}): Log {
  return fromPino(createLogger('node-agent', { level, destination: process.stderr }).child(base));
}

/** Message-first calls (the core's Log port) on a pino logger. */
export function fromPino(logger: Logger): Log {
  return {
    info: (msg, fields) => logger.info(fields ?? {}, msg),
    warn: (msg, fields) => logger.warn(fields ?? {}, msg),
    error: (msg, fields) => logger.error(fields ?? {}, msg),
  };
}

import { randomUUID } from 'node:crypto';
import { ChangeoverError } from '@changeover/contracts';
import type { ExpectedVersion, NewEvent } from '../types.js';

/** An event checked and serialised once, ready for the INSERT. */
export interface PreparedEvent {
  id: string;
  type: string;
  /** JSON text of data and metadata: what Postgres parses into jsonb. */
  data: string;
  metadata: string;
}

export const MAX_STREAM_ID_LENGTH = 256;
export const MAX_EVENTS_PER_APPEND = 10_000;
/** Bigger events could not be relayed (NATS max_payload is 1 MiB) and would block the outbox. */
export const MAX_EVENT_BYTES = 512 * 1024;
export const MAX_READ_LIMIT = 10_000;

/** `aggregate.kebab-name`: exactly what eventSubject() can turn into a JetStream subject. */
const EVENT_TYPE = /^[a-z][a-z0-9-]{0,63}\.[a-z][a-z0-9-]{0,63}$/;
/** Event ids travel as Nats-Msg-Id headers and CloudEvent ids. */
const EVENT_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const SUBSCRIPTION_NAME = /^[A-Za-z0-9._-]{1,128}$/;
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;
/** An escaped NUL or lone surrogate in JSON text: jsonb refuses both, which would fail a whole batch. */
const JSONB_UNSAFE = /(?:^|[^\\])(?:\\\\)*\\u(?:0000|d[89a-f][0-9a-f]{2}(?!\\ud[c-f])|d[c-f][0-9a-f]{2})/i;

function invalid(field: string, message: string): ChangeoverError {
  return new ChangeoverError('VALIDATION_FAILED', `${field}: ${message}`, { field });
}

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 60));
  if (typeof value === 'bigint') return `${value}n`;
  return value === null ? 'null' : typeof value;
}

/** Stream ids like `rollout-<id>`, `package-<name>`, `cluster`: non-empty text without control characters. */
export function assertStreamId(value: unknown, field = 'streamId'): string {
  if (typeof value !== 'string' || value.length === 0) throw invalid(field, `must be a non-empty string, got ${show(value)}`);
  if (value.length > MAX_STREAM_ID_LENGTH) throw invalid(field, `must be at most ${MAX_STREAM_ID_LENGTH} characters`);
  if (CONTROL_CHARS.test(value) || value.trim() !== value) throw invalid(field, `must not contain control characters or surrounding spaces, got ${show(value)}`);
  return value;
}

export function assertExpectedVersion(value: unknown, field = 'expectedVersion'): ExpectedVersion {
  if (value === 'no-stream' || value === 'stream-exists' || value === 'any') return value;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  throw invalid(field, `must be a non-negative integer, 'no-stream', 'stream-exists' or 'any', got ${show(value)}`);
}

/** JSON text of `value` (JSON semantics: NaN and Infinity become null), or a typed error naming the field. */
export function toJsonText(value: unknown, field: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    throw invalid(field, `is not JSON-serialisable (${e instanceof Error ? e.message : String(e)})`);
  }
  if (text === undefined) throw invalid(field, `is not JSON-serialisable (${typeof value})`);
  if (text.includes('\\u') && JSONB_UNSAFE.test(text)) throw invalid(field, 'holds a NUL character or a lone surrogate, which jsonb cannot store');
  return text;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Checks and serialises the events of one append; ids default to fresh UUIDs. */
export function prepareEvents(events: unknown, field = 'events'): PreparedEvent[] {
  if (!Array.isArray(events) || events.length === 0) throw invalid(field, `must be a non-empty array, got ${Array.isArray(events) ? 'an empty array' : show(events)}`);
  if (events.length > MAX_EVENTS_PER_APPEND) throw invalid(field, `at most ${MAX_EVENTS_PER_APPEND} events per append, got ${events.length}`);
  const seen = new Set<string>();
  return events.map((raw: unknown, i) => {
    const at = `${field}[${i}]`;
    if (!isPlainObject(raw)) throw invalid(at, `must be an object with type and data, got ${show(raw)}`);
    const event = raw as Partial<NewEvent>;
    if (typeof event.type !== 'string') throw invalid(`${at}.type`, `must be a string, got ${show(event.type)}`);
    if (!EVENT_TYPE.test(event.type)) throw invalid(`${at}.type`, `must look like 'aggregate.kebab-name', got ${show(event.type)}`);
    if (!('data' in event)) throw invalid(`${at}.data`, 'is missing');
    const id = event.id === undefined ? randomUUID() : event.id;
    if (typeof id !== 'string' || !EVENT_ID.test(id)) throw invalid(`${at}.id`, `must match [A-Za-z0-9._:-]{1,128}, got ${show(id)}`);
    if (seen.has(id)) throw invalid(`${at}.id`, `repeats id ${show(id)} within one append`);
    seen.add(id);
    if (event.metadata !== undefined && !isPlainObject(event.metadata)) throw invalid(`${at}.metadata`, `must be a plain object, got ${show(event.metadata)}`);
    const data = toJsonText(event.data, `${at}.data`);
    const metadata = toJsonText(event.metadata ?? {}, `${at}.metadata`);
    if (data.length + metadata.length > MAX_EVENT_BYTES) {
      throw new ChangeoverError('TOO_LARGE', `${at}: event is ${data.length + metadata.length} characters of JSON, at most ${MAX_EVENT_BYTES}`, { field: at });
    }
    return { id, type: event.type, data, metadata };
  });
}

/** The largest global position Postgres' bigint can hold. */
export const MAX_POSITION = 9_223_372_036_854_775_807n;

/** A global position: a non-negative integer (number or bigint) that fits the bigint column. */
export function assertPosition(value: unknown, field = 'position'): bigint {
  if (typeof value === 'bigint' && value >= 0n && value <= MAX_POSITION) return value;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  throw invalid(field, `must be a non-negative integer, got ${show(value)}${typeof value === 'number' ? ` ${value}` : ''}`);
}

export function assertLimit(value: unknown, field = 'limit', max = MAX_READ_LIMIT): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 && value <= max) return value;
  throw invalid(field, `must be an integer from 1 to ${max}, got ${show(value)}${typeof value === 'number' ? ` ${value}` : ''}`);
}

export function assertSubscriptionName(value: unknown, field = 'name'): string {
  if (typeof value === 'string' && SUBSCRIPTION_NAME.test(value)) return value;
  throw invalid(field, `must match [A-Za-z0-9._-]{1,128}, got ${show(value)}`);
}

/** Optional positive integer option (pool size, batch size, timeouts). */
export function optionalInt(value: unknown, field: string, fallback: number, min = 1, max = 1_000_000): number {
  if (value === undefined) return fallback;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max) return value;
  throw invalid(field, `must be an integer from ${min} to ${max}, got ${show(value)}${typeof value === 'number' ? ` ${value}` : ''}`);
}

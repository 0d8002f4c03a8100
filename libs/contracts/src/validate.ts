import { z } from 'zod';
import { ChangeoverError } from './errors.js';

function describe(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}

/** Parses `data` with `schema` or throws a VALIDATION_FAILED error whose message names each bad field. */
export function parse<S extends z.ZodType>(schema: S, data: unknown, what = 'message'): z.infer<S> {
  const result = schema.safeParse(data);
  if (result.success) return result.data;
  throw new ChangeoverError('VALIDATION_FAILED', `invalid ${what}: ${describe(result.error.issues)}`, {
    issues: result.error.issues.slice(0, 20).map((i) => ({ path: i.path.map(String), message: i.message, code: i.code })),
  });
}

const decoder = new TextDecoder();
/** Decodes a JSON wire payload (bytes or text) and validates it. */
export function decode<S extends z.ZodType>(schema: S, payload: Uint8Array | string, what = 'message'): z.infer<S> {
  let json: unknown;
  try {
    // One decoder for every message: constructing one per message cost more than the decoding.
    json = JSON.parse(typeof payload === 'string' ? payload : decoder.decode(payload));
  } catch {
    throw new ChangeoverError('VALIDATION_FAILED', `invalid ${what}: not JSON`);
  }
  return parse(schema, json, what);
}

const encoder = new TextEncoder();
/** Encodes a value as a JSON wire payload; a value JSON cannot carry (BigInt, a cycle, undefined) is VALIDATION_FAILED. */
export function encode(value: unknown, what = 'message'): Uint8Array {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    throw new ChangeoverError('VALIDATION_FAILED', `cannot encode ${what} as JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (text === undefined) throw new ChangeoverError('VALIDATION_FAILED', `cannot encode ${what} as JSON: ${typeof value}`);
  return encoder.encode(text);
}

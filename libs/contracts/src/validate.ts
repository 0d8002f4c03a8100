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

/**
 * Decodes messages whose last member is a large value that many messages repeat byte for byte: the
 * inventory ending a completion report (the 10,000 nodes of a wave report a handful of distinct
 * ones). Each distinct text of that member is parsed and validated once; a message ending in a text
 * seen before is decoded as its other members plus the value kept for that text. The result is
 * always what `decode(schema, payload)` gives; only the work differs. Anything else (the member not
 * last, other spacing, a text not seen, a message that does not pass) is decoded in full.
 *
 * Kept values are shared by every message that carried their text: treat results as read-only.
 * Bounded: at most `maxEntries` texts of at most `maxTextLength` characters, the oldest dropped first.
 */
export class RepeatedTailDecoder<S extends z.ZodType> {
  private readonly marker: string;
  private readonly headSchema: z.ZodObject;
  private readonly kept = new Map<string, unknown>();
  private readonly maxEntries: number;
  private readonly maxTextLength: number;

  constructor(
    private readonly schema: S,
    private readonly member: string,
    opts: { maxEntries?: number; maxTextLength?: number } = {},
  ) {
    if (!(schema instanceof z.ZodObject) || typeof member !== 'string' || !Object.hasOwn(schema.shape, member)) {
      throw new ChangeoverError('VALIDATION_FAILED', `a repeated tail needs an object schema with a member ${JSON.stringify(member)}`);
    }
    this.marker = `,${JSON.stringify(member)}:`;
    this.headSchema = schema.omit({ [member]: true } as Record<string, true>);
    this.maxEntries = opts.maxEntries ?? 64;
    this.maxTextLength = opts.maxTextLength ?? 256 * 1024;
  }

  decode(payload: Uint8Array | string, what = 'message'): z.infer<S> {
    const text = typeof payload === 'string' ? payload : decoder.decode(payload);
    // `{…,"member":<tail>}`: the last marker, with the text ending right after the tail.
    const at = text.lastIndexOf(this.marker);
    const tail = at > 0 && text.charCodeAt(text.length - 1) === 0x7d ? text.slice(at + this.marker.length, -1) : undefined;
    if (tail !== undefined) {
      const known = this.kept.get(tail);
      if (known !== undefined) {
        const head = headOf(text, at);
        // The head is the whole message but the member: without it (a second copy, say) the head
        // schema passes exactly when the full schema would with the kept value as the member.
        const result = head === undefined ? undefined : this.headSchema.safeParse(head);
        if (result?.success) {
          (result.data as Record<string, unknown>)[this.member] = known;
          return result.data as z.infer<S>;
        }
      }
    }
    const value = decode(this.schema, text, what);
    const member = (value as Record<string, unknown>)[this.member];
    // Kept only when the marker is proved to be at the top level, outside any string: then the tail
    // is the member's own text and `member` is its validated value.
    if (tail !== undefined && member !== undefined && tail.length <= this.maxTextLength && headOf(text, at) !== undefined) {
      if (this.kept.size >= this.maxEntries) this.kept.delete(this.kept.keys().next().value as string);
      this.kept.set(tail, member);
    }
    return value;
  }

  /** How many distinct texts are kept. */
  get size(): number {
    return this.kept.size;
  }
}

/**
 * The members before `at` as an object, or undefined unless `text[0, at)` closed with `}` is a JSON
 * object with at least one member. Closing it parses only if `at` lies outside every string and
 * directly inside the outermost object, so the text after `at` is the last member of that object.
 */
function headOf(text: string, at: number): Record<string, unknown> | undefined {
  let head: unknown;
  try {
    head = JSON.parse(`${text.slice(0, at)}}`);
  } catch {
    return undefined;
  }
  if (head === null || typeof head !== 'object' || Array.isArray(head)) return undefined;
  return Object.keys(head).length > 0 ? (head as Record<string, unknown>) : undefined;
}

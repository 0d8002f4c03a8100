import { describe, expect, it } from '@jest/globals';
import { ChangeoverError, parse } from '../index.js';
import { jsonSchemaOf } from './artifacts.js';
import { catalogMessages, type MessageSpec } from './catalog.js';

// Table-driven over every wire message: its example is accepted; a missing field, a wrong type,
// an unknown field (strict schemas) and an oversized string are refused with the field named.

type JsonSchema = { type?: string | string[]; properties?: Record<string, JsonSchema>; required?: string[]; items?: JsonSchema; maxLength?: number; oneOf?: JsonSchema[]; anyOf?: JsonSchema[]; const?: unknown; additionalProperties?: unknown };
type Obj = Record<string, unknown>;

const clone = <T>(v: T): T => structuredClone(v);
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The branch of a union the value is an instance of (by its const fields), or the schema itself. */
function branch(schema: JsonSchema, value: unknown): JsonSchema {
  const options = schema.oneOf ?? schema.anyOf;
  if (!options || !isObj(value)) return schema;
  return options.find((o) => o.properties && Object.entries(o.properties).every(([k, p]) => p.const === undefined || value[k] === p.const) && (o.required ?? []).every((k) => k in value)) ?? schema;
}

function wrongValue(s: JsonSchema): unknown {
  const t = Array.isArray(s.type) ? s.type[0] : s.type;
  return t === 'string' ? 12345 : t === 'object' || t === 'array' ? 'not-a-structure' : 'not-a-number-or-flag';
}

/** Path (through objects and first array elements of the example) to a string field with a maxLength. */
function boundedString(schema: JsonSchema, value: unknown, path: (string | number)[] = []): { path: (string | number)[]; max: number } | undefined {
  const s = branch(schema, value);
  if (s.type === 'string' && typeof s.maxLength === 'number' && typeof value === 'string' && s.maxLength < 100_000) return { path, max: s.maxLength };
  if (s.type === 'array' && s.items && Array.isArray(value) && value.length > 0) return boundedString(s.items, value[0], [...path, 0]);
  if (s.properties && isObj(value)) {
    for (const [k, p] of Object.entries(s.properties)) {
      if (k in value) {
        const found = boundedString(p, value[k], [...path, k]);
        if (found) return found;
      }
    }
  }
  return undefined;
}

function setAt(root: unknown, path: (string | number)[], v: unknown): void {
  let cur = root as Obj;
  for (const k of path.slice(0, -1)) cur = cur[k] as Obj;
  cur[path[path.length - 1]!] = v;
}

function rejection(m: MessageSpec, value: unknown): ChangeoverError {
  try {
    parse(m.schema, value, m.name);
  } catch (e) {
    if (e instanceof ChangeoverError) return e;
    throw e;
  }
  throw new Error(`${m.name} accepted ${JSON.stringify(value).slice(0, 300)}`);
}

const table = catalogMessages().map((m) => [m.name, m] as const);

describe.each(table)('%s', (_name, m) => {
  const schema = branch(jsonSchemaOf(m.schema) as JsonSchema, m.example);

  it('accepts its example', () => {
    expect(() => parse(m.schema, m.example, m.name)).not.toThrow();
  });

  it('refuses each missing required field, naming it', () => {
    const required = schema.required ?? [];
    // A message without required fields (a filter) must accept the empty object.
    if (required.length === 0) expect(() => parse(m.schema, {}, m.name)).not.toThrow();
    for (const key of required) {
      const v = clone(m.example) as Obj;
      delete v[key];
      const err = rejection(m, v);
      expect(err.code).toBe('VALIDATION_FAILED');
      expect(err.message).toContain(key);
    }
  });

  it('refuses a wrong type, naming the field', () => {
    const [key, prop] = Object.entries(schema.properties ?? {}).find(([k, p]) => k in (m.example as Obj) && p.const === undefined && p.type !== undefined) ?? [];
    expect(key).toBeDefined();
    const v = clone(m.example) as Obj;
    v[key!] = wrongValue(prop!);
    expect(rejection(m, v).message).toContain(key);
  });

  it('refuses an oversized string, naming the field', () => {
    const target = boundedString(schema, m.example);
    // Only numbers and flags; and an image whose size the transport bounds (serveRpc maxRequestBytes).
    if (!target) return expect(m.name).toMatch(/^(RolloutAdjustClusterVersionRequest|RegistryImportImageRequest)$/);
    const v = clone(m.example);
    setAt(v, target.path, 'x'.repeat(target.max + 1));
    expect(rejection(m, v).message).toContain(target.path.join('.'));
  });

  it(m.strict ? 'refuses an unknown field' : 'keeps unknown envelope fields (CloudEvents extensions)', () => {
    const v = { ...(m.example as Obj), unexpectedField: 1 };
    if (m.strict) expect(rejection(m, v).message).toContain('unexpectedField');
    else expect(() => parse(m.schema, v, m.name)).not.toThrow();
  });

  it('refuses something that is not an object', () => {
    for (const bad of [null, 'text', 42, []]) expect(rejection(m, bad).code).toBe('VALIDATION_FAILED');
  });
});

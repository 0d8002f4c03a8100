import fc from 'fast-check';

// Fuzzing helpers shared by the services: wire payloads made from valid examples by one or two
// mutations (plus raw garbage), Prometheus sums, the ErrorBody check and a process fault listener.

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Path = (string | number)[];

/** Every path into a JSON value (the root is []). */
function paths(value: Json, at: Path = [], out: Path[] = []): Path[] {
  out.push(at);
  if (Array.isArray(value)) value.forEach((v, i) => paths(v, [...at, i], out));
  else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) paths(v, [...at, k], out);
  return out;
}

const clone = (v: Json): Json => JSON.parse(JSON.stringify(v)) as Json;

/** Replaces (or, with `undefined`, removes) the value at `path`; the root is replaced by `replacement ?? null`. */
function setAt(root: Json, path: Path, replacement: Json | undefined): Json {
  if (path.length === 0) return replacement ?? null;
  const parent = path.slice(0, -1).reduce<Json>((v, k) => (v as Record<string | number, Json>)[k]!, root);
  const key = path[path.length - 1]!;
  if (Array.isArray(parent)) {
    if (replacement === undefined) parent.splice(key as number, 1);
    else parent[key as number] = replacement;
  } else if (parent !== null && typeof parent === 'object') {
    if (replacement === undefined) delete parent[key as string];
    else parent[key as string] = replacement;
  }
  return root;
}

const DEEP_MARK = '__deep_nesting_mark__';

/** A value of some other JSON type than usual at that spot. */
const otherType: fc.Arbitrary<Json> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.constantFrom(-1, 0, 1e308, -1e308, 2 ** 53 + 1, 0.5),
  fc.string({ maxLength: 20 }),
  fc.constant([] as Json[]),
  fc.constant({} as Json),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.constant('1.0.0'),
  fc.constant('sha256:' + 'a'.repeat(64)),
);

type Mutation =
  | { kind: 'flip'; to: Json }
  | { kind: 'drop' }
  | { kind: 'add'; key: string; value: Json }
  | { kind: 'oversize'; size: number }
  | { kind: 'unstorable'; text: string }
  | { kind: 'deep'; depth: number; objects: boolean }
  | { kind: 'bad-utf8'; at: number; bytes: number[] }
  | { kind: 'truncate'; at: number }
  | { kind: 'garbage'; text: string };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), to: otherType }),
  fc.record({ kind: fc.constant('drop' as const) }),
  fc.record({ kind: fc.constant('add' as const), key: fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('__proto__', 'constructor', 'nodeId', 'extra')), value: fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json> }),
  fc.record({ kind: fc.constant('oversize' as const), size: fc.integer({ min: 5_000, max: 200_000 }) }),
  fc.record({ kind: fc.constant('unstorable' as const), text: fc.constantFrom('\u0000', 'a\u0000b', '\ud800', 'x\udc00', '\ud83d') }),
  fc.record({ kind: fc.constant('deep' as const), depth: fc.integer({ min: 65, max: 20_000 }), objects: fc.boolean() }),
  fc.record({ kind: fc.constant('bad-utf8' as const), at: fc.nat(), bytes: fc.constantFrom<number[]>([0xff], [0xc3, 0x28], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80]) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('garbage' as const), text: fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('', 'null', '[]', '"x"', '{', 'undefined', 'NaN', '{"a":1}{')) }),
);

/** Applies one mutation to a copy of `example` at the path chosen by `seed`; returns the wire bytes. */
export function mutate(example: unknown, m: Mutation, seed: number): Uint8Array {
  let value = clone(example as Json);
  const all = paths(value);
  const path = all[seed % all.length]!;
  const enc = (v: Json) => new TextEncoder().encode(JSON.stringify(v));
  switch (m.kind) {
    case 'flip':
      return enc(setAt(value, path, m.to));
    case 'drop':
      return enc(setAt(value, path, undefined));
    case 'add': {
      const target = path.reduce<Json>((v, k) => (v as Record<string | number, Json>)[k]!, value);
      if (target !== null && typeof target === 'object' && !Array.isArray(target)) Object.defineProperty(target, m.key, { value: m.value, enumerable: true, configurable: true, writable: true });
      else value = setAt(value, path, { [m.key]: m.value });
      return enc(value);
    }
    case 'oversize':
      return enc(setAt(value, path, 'x'.repeat(m.size)));
    case 'unstorable':
      return enc(setAt(value, path, m.text));
    case 'deep': {
      const text = JSON.stringify(setAt(value, path, DEEP_MARK));
      const deep = m.objects ? '{"a":'.repeat(m.depth) + '1' + '}'.repeat(m.depth) : '['.repeat(m.depth) + ']'.repeat(m.depth);
      return new TextEncoder().encode(text.replace(`"${DEEP_MARK}"`, deep));
    }
    case 'bad-utf8': {
      const bytes = enc(value);
      const at = m.at % (bytes.length + 1);
      return Uint8Array.from([...bytes.subarray(0, at), ...m.bytes, ...bytes.subarray(at)]);
    }
    case 'truncate': {
      const bytes = enc(value);
      return bytes.subarray(0, m.at % Math.max(1, bytes.length));
    }
    case 'garbage':
      return new TextEncoder().encode(m.text);
  }
}

/** Payloads made from the valid examples by one or two mutations, or arbitrary JSON, or arbitrary bytes. */
export function mutatedPayload(examples: readonly unknown[]): fc.Arbitrary<Uint8Array> {
  const once = fc.tuple(fc.constantFrom(...examples), mutation, fc.nat()).map(([ex, m, seed]) => mutate(ex, m, seed));
  const twice = fc
    .tuple(fc.constantFrom(...examples), fc.constantFrom<Mutation>({ kind: 'drop' }, { kind: 'flip', to: null }, { kind: 'flip', to: 7 }), fc.nat(), mutation, fc.nat())
    .map(([ex, m1, s1, m2, s2]) => {
      const first = JSON.parse(new TextDecoder().decode(mutate(ex, m1, s1))) as Json;
      return mutate(first, m2, s2);
    });
  const anything = fc.jsonValue({ maxDepth: 3 }).map((v) => new TextEncoder().encode(JSON.stringify(v)));
  const bytes = fc.uint8Array({ maxLength: 200 });
  return fc.oneof({ arbitrary: once, weight: 6 }, { arbitrary: twice, weight: 2 }, { arbitrary: anything, weight: 1 }, { arbitrary: bytes, weight: 1 });
}

/** Sums the samples of Prometheus counters in a /metrics text whose name matches and whose labels include `labels`. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^([^{\s]+)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const found = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]));
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

/**
 * Why `body` is not a typed refusal (null when it is): an ErrorBody whose code is one of `codes`,
 * never INTERNAL, with a message, and (when given) the HTTP status the code maps to.
 */
export function errorBodyProblem(body: unknown, known: { codes: readonly string[]; httpStatus?: Record<string, number> }, status?: number): string | null {
  if (typeof body !== 'object' || body === null) return `not an object: ${JSON.stringify(body)}`;
  const { code, message } = body as { code?: unknown; message?: unknown };
  if (typeof code !== 'string' || !known.codes.includes(code)) return `unknown code ${String(code)}`;
  if (typeof message !== 'string' || message.length === 0) return 'no message';
  if (code === 'INTERNAL') return `INTERNAL: ${message}`;
  if (status !== undefined && known.httpStatus && known.httpStatus[code] !== status) return `status ${status} for ${code}`;
  return null;
}

/**
 * Records every unhandled rejection and uncaught exception of this process while a suite runs.
 * Listens on the real `process`: Jest hands tests a copy whose listeners never fire, but `Buffer` comes
 * from the outer realm, so its Function constructor evaluates there.
 */
export function processFaults(): { faults: unknown[]; stop(): void } {
  const process = (Buffer.constructor as FunctionConstructor)('return process')() as NodeJS.Process;
  const faults: unknown[] = [];
  const onRejection = (reason: unknown) => faults.push(reason);
  const onException = (err: unknown) => faults.push(err);
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return {
    faults,
    stop() {
      process.off('unhandledRejection', onRejection);
      process.off('uncaughtException', onException);
    },
  };
}

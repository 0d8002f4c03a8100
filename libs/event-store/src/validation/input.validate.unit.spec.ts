import { describe, expect, it } from '@jest/globals';
import { isChangeoverError } from '@changeover/contracts';
import { assertExpectedVersion, assertLimit, assertPosition, assertStreamId, assertSubscriptionName, prepareEvents, toJsonText } from './input.validate.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isChangeoverError(e) ? `${e.code}:${String(e.details?.['field'])}` : `untyped:${String(e)}`;
  }
  return undefined;
}

describe('input validation', () => {
  it('accepts the stream ids the services use', () => {
    for (const id of ['rollout-r1', 'package-billing', 'node-n_1', 'class-edge', 'cluster']) expect(assertStreamId(id)).toBe(id);
  });

  it.each([[''], [' x'], ['a\u0000b'], ['a\nb'], [42], [null], ['x'.repeat(257)]])('rejects stream id %p with a typed error', (id) => {
    expect(codeOf(() => assertStreamId(id))).toBe('VALIDATION_FAILED:streamId');
  });

  it('accepts every expected-version form and rejects the rest', () => {
    for (const v of [0, 7, 'no-stream', 'stream-exists', 'any'] as const) expect(assertExpectedVersion(v)).toBe(v);
    for (const bad of [-1, 1.5, NaN, '3', 'latest', null, undefined, 2n]) expect(codeOf(() => assertExpectedVersion(bad))).toBe('VALIDATION_FAILED:expectedVersion');
  });

  it('serialises events once and gives each a fresh id unless one is given', () => {
    const [a, b] = prepareEvents([
      { type: 'rollout.created', data: { rolloutId: 'r1' } },
      { type: 'rollout.proposed', data: [1, 2], metadata: { traceparent: 't' }, id: 'evt-2' },
    ]);
    expect(a!.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(a!.data).toBe('{"rolloutId":"r1"}');
    expect(a!.metadata).toBe('{}');
    expect(b).toEqual({ id: 'evt-2', type: 'rollout.proposed', data: '[1,2]', metadata: '{"traceparent":"t"}' });
  });

  it.each([
    ['not an array', { type: 'a.b', data: 1 }, 'events'],
    ['an empty array', [], 'events'],
    ['a non-object event', [7], 'events[0]'],
    ['a type that is not a string', [{ type: 5, data: {} }], 'events[0].type'],
    ['a type that cannot become a subject', [{ type: 'Rollout Created', data: {} }], 'events[0].type'],
    ['missing data', [{ type: 'a.b' }], 'events[0].data'],
    ['undefined data', [{ type: 'a.b', data: undefined }], 'events[0].data'],
    ['a function as data', [{ type: 'a.b', data: () => 1 }], 'events[0].data'],
    ['a bigint in data', [{ type: 'a.b', data: { n: 1n } }], 'events[0].data'],
    ['a NUL character', [{ type: 'a.b', data: { s: 'a\u0000b' } }], 'events[0].data'],
    ['a lone surrogate', [{ type: 'a.b', data: { s: 'x\ud800' } }], 'events[0].data'],
    ['array metadata', [{ type: 'a.b', data: {}, metadata: [] }], 'events[0].metadata'],
    ['a bad id', [{ type: 'a.b', data: {}, id: 'has space' }], 'events[0].id'],
    ['a repeated id', [{ type: 'a.b', data: {}, id: 'x' }, { type: 'a.b', data: {}, id: 'x' }], 'events[1].id'],
  ])('rejects %s with a typed error naming the field', (_what, events, field) => {
    expect(codeOf(() => prepareEvents(events))).toBe(`VALIDATION_FAILED:${field}`);
  });

  it('rejects circular data as not JSON-serialisable', () => {
    const data: Record<string, unknown> = {};
    data['self'] = data;
    expect(codeOf(() => prepareEvents([{ type: 'a.b', data }]))).toBe('VALIDATION_FAILED:events[0].data');
  });

  it('follows JSON for non-finite numbers', () => {
    expect(toJsonText({ n: Infinity, m: NaN }, 'data')).toBe('{"n":null,"m":null}');
  });

  it('keeps escaped backslashes and paired surrogates, which jsonb stores fine', () => {
    expect(toJsonText({ s: 'C:\\u0000dir', e: '😀' }, 'data')).toBe('{"s":"C:\\\\u0000dir","e":"😀"}');
  });

  it('refuses events too big to relay', () => {
    expect(codeOf(() => prepareEvents([{ type: 'a.b', data: 'x'.repeat(600_000) }]))).toBe('TOO_LARGE:events[0]');
  });

  it('checks positions, limits and subscription names', () => {
    expect(assertPosition(0)).toBe(0n);
    expect(assertPosition(12n)).toBe(12n);
    for (const bad of [-1, -1n, 1.5, '3', null, 2n ** 63n]) expect(codeOf(() => assertPosition(bad))).toBe('VALIDATION_FAILED:position');
    expect(assertPosition(2n ** 63n - 1n)).toBe(2n ** 63n - 1n);
    expect(assertLimit(10)).toBe(10);
    for (const bad of [0, -5, 10_001, 2.5, '10']) expect(codeOf(() => assertLimit(bad))).toBe('VALIDATION_FAILED:limit');
    expect(assertSubscriptionName('outbox-relay')).toBe('outbox-relay');
    for (const bad of ['', 'a b', 'x'.repeat(129), 3]) expect(codeOf(() => assertSubscriptionName(bad))).toBe('VALIDATION_FAILED:name');
  });
});

import { describe, expect, it } from '@jest/globals';
import { JsonInterner, jsonEqual } from './json-equal.js';

describe('jsonEqual', () => {
  it('compares objects by keys in any order and arrays in order', () => {
    expect(jsonEqual({ a: 1, b: [1, { c: 'x' }] }, { b: [1, { c: 'x' }], a: 1 })).toBe(true);
    expect(jsonEqual([1, 2], [2, 1])).toBe(false);
    expect(jsonEqual({ a: 1 }, { a: 1, b: 2 })).toBe(false);
    expect(jsonEqual({ a: 1, b: 2 }, { a: 1, c: 2 })).toBe(false);
    expect(jsonEqual({ a: null }, { a: null })).toBe(true);
    expect(jsonEqual({ a: null }, { a: {} })).toBe(false);
    expect(jsonEqual([], {})).toBe(false);
    expect(jsonEqual({}, [])).toBe(false);
    expect(jsonEqual('1', 1)).toBe(false);
    expect(jsonEqual({ a: [1, [2, 3]] }, { a: [1, [2, 4]] })).toBe(false);
  });
});

describe('JsonInterner', () => {
  it('returns the first of equal values under a key, and a different value as itself', () => {
    const interner = new JsonInterner<{ digest: string; active: string[] }>();
    const first = interner.intern('d1', { digest: 'd1', active: ['a@1'] });
    const again = interner.intern('d1', { active: ['a@1'], digest: 'd1' });
    expect(again).toBe(first);
    // Same key, other content (a node claiming another's digest): its own value, never the shared one.
    const liar = { digest: 'd1', active: ['evil@6'] };
    expect(interner.intern('d1', liar)).toBe(liar);
    expect(interner.intern('d1', { digest: 'd1', active: ['evil@6'] })).toBe(liar);
  });

  it('keeps at most maxKeys keys (the oldest goes) and maxPerKey values per key', () => {
    const interner = new JsonInterner<number[]>(2, 1);
    const a = interner.intern('a', [1]);
    interner.intern('b', [2]);
    interner.intern('c', [3]);
    expect(interner.size).toBe(2);
    // 'a' was dropped: an equal value is not the old object any more.
    expect(interner.intern('a', [1])).not.toBe(a);
    const c2 = [4];
    expect(interner.intern('c', c2)).toBe(c2);
    // Only one value per key is kept: [4] was not, so an equal one is its own object.
    expect(interner.intern('c', [4])).not.toBe(c2);
  });
});

import { describe, expect, it } from '@jest/globals';
import { assertStorable, MAX_DEPTH } from './storable.js';

describe('assertStorable', () => {
  it('accepts ordinary values, paired surrogates and non-string leaves', () => {
    expect(() => assertStorable({ a: ['x', 1, null, true], emoji: '😀', nested: { b: 'ü' } })).not.toThrow();
  });

  it.each([
    ['a NUL in a value', { labels: { zone: 'a\u0000' } }, 'request.labels.zone'],
    ['a lone high surrogate', { d: ['ok', '\ud800x'] }, 'request.d.1'],
    ['a lone low surrogate', { d: '\udc00' }, 'request.d'],
    ['a NUL in a key', { ['k\u0000']: 1 }, 'request'],
  ])('refuses %s with VALIDATION_FAILED naming the field', (_, value, field) => {
    expect(() => assertStorable(value)).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED', message: expect.stringContaining(field) }));
  });

  it('refuses nesting deeper than MAX_DEPTH without recursion', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(() => assertStorable(deep)).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED', message: expect.stringContaining(`deeper than ${MAX_DEPTH}`) }));
  });
});

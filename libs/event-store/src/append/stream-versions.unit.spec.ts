import { describe, expect, it } from '@jest/globals';
import type { AppendRequest } from './append-plan.js';
import { StreamVersionCache, versionsToRead } from './stream-versions.js';

const req = (streamId: string, expected: AppendRequest['expected']): AppendRequest => ({ streamId, expected, events: [] });

describe('stream version cache', () => {
  it('trusts a cached version unless the caller expects a higher one', () => {
    const cache = new StreamVersionCache();
    cache.set('a', 3);
    cache.set('b', 3);
    cache.set('c', 3);
    const { assumed, read } = versionsToRead([req('a', 3), req('b', 5), req('c', 'any'), req('a', 4)], cache);
    expect([...assumed]).toEqual([['a', 3], ['c', 3]]);
    expect(read).toEqual(['b']);
  });

  it("assumes 0 for unknown streams expected not to exist, and reads the rest", () => {
    const { assumed, read } = versionsToRead([req('n', 'no-stream'), req('z', 0), req('x', 'any'), req('y', 'stream-exists'), req('w', 2)], new StreamVersionCache());
    expect([...assumed]).toEqual([['n', 0], ['z', 0]]);
    expect(read).toEqual(['x', 'y', 'w']);
  });

  it('reads every version when no cache is trusted', () => {
    expect(versionsToRead([req('n', 'no-stream'), req('m', 1)], undefined)).toEqual({ assumed: new Map(), read: ['n', 'm'] });
  });

  it('stays bounded, dropping the streams touched longest ago', () => {
    const cache = new StreamVersionCache(10);
    for (let i = 0; i < 10; i++) cache.set(`s${i}`, i);
    cache.set('s0', 100); // touched again: now the newest
    cache.set('s10', 10);
    expect(cache.size).toBe(10);
    expect(cache.get('s1')).toBeUndefined();
    expect(cache.get('s0')).toBe(100);
    cache.forget(['s0']);
    expect(cache.get('s0')).toBeUndefined();
  });
});

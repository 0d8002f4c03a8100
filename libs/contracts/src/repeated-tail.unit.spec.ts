import { describe, expect, it } from '@jest/globals';
import { z } from 'zod';
import { ChangeoverError, decode, encode, ProgressReport, RepeatedTailDecoder, type Inventory } from './index.js';

const digest = (c: string) => `sha256:${c.repeat(64)}`;
const pkg = (version: string, c: string) => ({ name: 'app', version, modules: [{ name: 'app', version, digest: digest(c) }], requires: {}, provides: [], consumes: [] });
const inventory: Inventory = { active: [pkg('2.0.0', 'a')], previous: [pkg('1.0.0', 'b')], digest: digest('c') };
const report = (nodeId: string, inv: unknown = inventory, extra: Record<string, unknown> = {}) => ({ nodeId, rolloutId: 'r-1', attempt: 0, phase: 'completed', bytesFetched: 10, ...extra, inventory: inv });
const text = (v: unknown) => new TextDecoder().decode(encode(v));

/** decode's outcome: the value, or the error's code and message. */
const outcome = (f: () => unknown) => {
  try {
    return { value: f() };
  } catch (e) {
    return { error: e instanceof ChangeoverError ? `${e.code}: ${e.message}` : String(e) };
  }
};

describe('RepeatedTailDecoder', () => {
  it('decodes as decode does, and hands out one kept value for a repeated tail', () => {
    const d = new RepeatedTailDecoder(ProgressReport, 'inventory');
    const first = d.decode(encode(report('n-1')));
    const second = d.decode(encode(report('n-2')));
    expect(first).toEqual(decode(ProgressReport, encode(report('n-1'))));
    expect(second).toEqual(decode(ProgressReport, encode(report('n-2'))));
    expect(second.nodeId).toBe('n-2');
    expect(second.inventory).toBe(first.inventory);
    expect(d.size).toBe(1);
  });

  it('gives the same value or the same error as decode for every variant of a message', () => {
    const d = new RepeatedTailDecoder(ProgressReport, 'inventory');
    d.decode(encode(report('n-0')));
    const kept = JSON.stringify(inventory);
    const base = text(report('n-1'));
    const variants = [
      base,
      text(report('n-1', { ...inventory, digest: digest('d') })), // another inventory
      base.replace(digest('a'), 'sha256:xyz'), // a tampered tail: invalid
      base.replace('"n-1"', '"bad id!"'), // a bad head, good tail
      base.replace('"completed"', '"done"'),
      `{"inventory":${kept}}`, // the member alone: no head
      `{ ,"inventory":${kept}}`, // not JSON
      `{"nodeId":"n-1","rolloutId":"r-1","attempt":0,"phase":"completed","inventory":{"active":[]},"inventory":${kept}}`, // the member twice
      `{"nodeId":"n-1","rolloutId":"r-1","attempt":0,"phase":"completed","error":{"code":"X","message":"a","inventory":${kept}}`, // inside a nested object
      `{"nodeId":"n-1","rolloutId":"r-1","attempt":0,"phase":"completed","bytesFetched":"7","inventory":${kept}}`, // wrong type in the head
      `[{"nodeId":"n-1","rolloutId":"r-1","attempt":0,"phase":"completed","inventory":${kept}}`, // an array, not an object
      `{"nodeId":"n-1", "rolloutId":"r-1","attempt":0,"phase":"completed" ,"inventory":${kept}}`, // other spacing
      base.slice(0, -1), // cut short
      `${base} `, // trailing space
      `{"nodeId":"n-1","rolloutId":"r-1","attempt":0,"phase":"completed","extra":1,"inventory":${kept}}`, // an unknown member
    ];
    for (const v of variants) expect([v, outcome(() => d.decode(v))]).toEqual([v, outcome(() => decode(ProgressReport, v))]);
  });

  it('keeps a tail only when the member is the last one at the top level', () => {
    const d = new RepeatedTailDecoder(ProgressReport, 'inventory');
    d.decode(JSON.stringify({ inventory, nodeId: 'n-1', rolloutId: 'r-1', attempt: 0, phase: 'completed' }));
    expect(d.size).toBe(0);
    expect(() => d.decode(text(report('n-1', { ...inventory, digest: 'bad' })))).toThrow(ChangeoverError);
    expect(d.size).toBe(0);
    d.decode(text(report('n-1')));
    expect(d.size).toBe(1);
  });

  it('is bounded: the oldest tail goes first', () => {
    const d = new RepeatedTailDecoder(ProgressReport, 'inventory', { maxEntries: 2, maxTextLength: 1000 });
    const inv = (c: string) => ({ ...inventory, digest: digest(c) });
    for (const c of ['1', '2', '3']) d.decode(text(report('n-1', inv(c))));
    expect(d.size).toBe(2);
    const long = { ...inventory, active: Array.from({ length: 20 }, (_, i) => pkg(`2.0.${i}`, 'e')) };
    d.decode(text(report('n-1', long)));
    expect(d.size).toBe(2);
  });

  it('refuses a schema that is not an object or lacks the member', () => {
    expect(() => new RepeatedTailDecoder(z.string(), 'inventory')).toThrow(ChangeoverError);
    expect(() => new RepeatedTailDecoder(ProgressReport, 'packages')).toThrow(/packages/);
  });
});

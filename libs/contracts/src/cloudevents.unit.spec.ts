import { describe, expect, it } from '@jest/globals';
import { canonicalJson, ChangeoverError, decode, encode, ErrorBody, EVENT_TYPES, eventSubject, fromCloudEventType, isChangeoverError, parseCloudEvent, parseSubject, toCloudEvent, toCloudEventType } from './index.js';
import { EVENT_EXAMPLES } from './catalog/examples.js';

const stored = {
  id: '0b9f3c1e-1111-4a7e-9a3c-2e1f0d9c8b7a',
  type: 'rollout.votes-recorded',
  streamId: 'rollout-r1',
  globalPosition: 42n,
  data: EVENT_EXAMPLES['rollout.votes-recorded'],
  createdAt: new Date('2026-11-23T09:00:00.000Z'),
  metadata: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
};

describe('CloudEvents', () => {
  it('wraps a stored event as a CloudEvents 1.0 envelope and reads it back', () => {
    const ce = toCloudEvent(stored, 'changeover/rollout');
    expect(ce).toMatchObject({
      specversion: '1.0',
      id: stored.id,
      source: 'changeover/rollout',
      type: 'io.changeover.rollout.votes-recorded',
      subject: EVENT_EXAMPLES['rollout.votes-recorded']['rolloutId'],
      time: '2026-11-23T09:00:00.000Z',
      datacontenttype: 'application/json',
      changeoversequence: 42,
      changeoverstream: 'rollout-r1',
      traceparent: stored.metadata.traceparent,
    });
    const back = parseCloudEvent(JSON.parse(JSON.stringify(ce)));
    expect(back.eventType).toBe('rollout.votes-recorded');
    expect(back.data).toEqual(stored.data);
  });

  it('uses the metadata subject, else the rollout id, else the stream id', () => {
    expect(toCloudEvent({ ...stored, metadata: { subject: 'custom' } }).subject).toBe('custom');
    expect(toCloudEvent({ ...stored, type: 'node.became-active', data: { nodeId: 'n1', at: 'x' }, streamId: 'node-n1', metadata: undefined }).subject).toBe('node-n1');
    expect(toCloudEvent({ ...stored, createdAt: '2026-01-01T00:00:00Z' }).time).toBe('2026-01-01T00:00:00Z');
  });

  it('maps type names both ways', () => {
    expect(toCloudEventType('rollout.created')).toBe('io.changeover.rollout.created');
    expect(fromCloudEventType('io.changeover.rollout.created')).toBe('rollout.created');
    expect(fromCloudEventType('com.other.thing')).toBe('com.other.thing');
  });

  it.each(EVENT_TYPES)('%s: publishes on a subject parseSubject reads back', (type) => {
    const parsed = parseSubject(eventSubject(type));
    expect(parsed.kind).toBe('event');
    expect(parsed.kind === 'event' && `${parsed.aggregate}.${parsed.type}`).toBe(type);
  });

  it('refuses an unknown type with NOT_FOUND, bad data and bad envelopes with VALIDATION_FAILED naming the field', () => {
    const ce = toCloudEvent(stored);
    expect(() => parseCloudEvent({ ...ce, type: 'io.changeover.rollout.exploded' })).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    expect(() => parseCloudEvent({ ...ce, data: { ...stored.data, nodeId: 'bad id' } })).toThrow(/nodeId/);
    expect(() => parseCloudEvent({ ...ce, specversion: '0.3' })).toThrow(/specversion/);
    expect(() => parseCloudEvent({ ...ce, type: 'com.other.x' })).toThrow(/type/);
    expect(() => parseCloudEvent({ ...ce, id: '' })).toThrow(/id/);
    expect(() => parseCloudEvent('not an object')).toThrow(ChangeoverError);
    expect(() => eventSubject('noaggregate')).toThrow(ChangeoverError);
  });
});

describe('wire helpers refuse bad input with typed errors', () => {
  it('encode: values JSON cannot carry', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    for (const bad of [cyclic, 10n, undefined, () => 1]) {
      let caught: unknown;
      try {
        encode(bad);
      } catch (e) {
        caught = e;
      }
      expect(isChangeoverError(caught, 'VALIDATION_FAILED')).toBe(true);
    }
    expect(new TextDecoder().decode(encode({ a: 1 }))).toBe('{"a":1}');
  });

  it('decode: not JSON, and JSON of the wrong shape', () => {
    expect(() => decode(ErrorBody, '{')).toThrow(/not JSON/);
    expect(() => decode(ErrorBody, new TextEncoder().encode('{"code":1,"message":"m"}'))).toThrow(/code/);
    expect(decode(ErrorBody, '{"code":"NOT_FOUND","message":"m"}')).toEqual({ code: 'NOT_FOUND', message: 'm' });
  });

  it('canonicalJson: sorted keys; cycles and BigInt are typed errors', () => {
    expect(canonicalJson({ b: 1, a: [2, undefined, { d: 1, c: 2 }], u: undefined })).toBe('{"a":[2,null,{"c":2,"d":1}],"b":1}');
    const cyclic: unknown[] = [];
    cyclic.push(cyclic);
    expect(() => canonicalJson(cyclic)).toThrow(ChangeoverError);
    expect(() => canonicalJson({ n: 1n })).toThrow(/bigint/);
    const shared = { x: 1 };
    expect(canonicalJson([shared, shared])).toBe('[{"x":1},{"x":1}]');
  });
});

import { describe, expect, it } from '@jest/globals';
import { z } from 'zod';
import { isChangeoverError } from './errors.js';
import { natsServersOf, NatsServers, NatsStreamReplicas } from './nats-servers.js';
import { parse } from './validate.js';

const Env = z.object({ NATS_URL: NatsServers, NATS_STREAM_REPLICAS: NatsStreamReplicas });

describe('NATS_URL server lists', () => {
  it('defaults to the local server as a one-entry list', () => {
    expect(parse(Env, {}).NATS_URL).toEqual(['nats://127.0.0.1:4222']);
  });

  it('splits a comma-separated list, trimming blanks around entries and dropping repeats', () => {
    expect(parse(Env, { NATS_URL: 'nats://n1:4222, nats://n2:4222 ,tls://n3.example.com:4443,n1:4222,nats://n1:4222' }).NATS_URL).toEqual([
      'nats://n1:4222',
      'nats://n2:4222',
      'tls://n3.example.com:4443',
      'n1:4222',
    ]);
  });

  it('accepts host:port and bare hosts the way the client does', () => {
    expect(natsServersOf('127.0.0.1:4222,[::1]:4222,nats')).toEqual(['127.0.0.1:4222', '[::1]:4222', 'nats']);
  });

  it.each([
    ['', /entry 1 "" is empty/],
    ['nats://a:4222,,nats://b:4222', /entry 2 "" is empty/],
    ['nats://a:4222,', /entry 2 "" is empty/],
    ['nats://a:4222,http://b:4222', /entry 2 "http:\/\/b:4222" has scheme http/],
    ['nats://a:4222,nats://b:99999', /entry 2 "nats:\/\/b:99999" is not a URL/],
    ['nats://a b:4222', /entry 1 "nats:\/\/a b:4222" contains whitespace/],
    ['nats://a:4222/path', /entry 1 "nats:\/\/a:4222\/path" has a path/],
  ])('rejects %j naming the bad entry', (value, message) => {
    let error: unknown;
    try {
      parse(Env, { NATS_URL: value }, 'configuration');
    } catch (e) {
      error = e;
    }
    expect(isChangeoverError(error, 'VALIDATION_FAILED')).toBe(true);
    expect((error as Error).message).toMatch(/NATS_URL/);
    expect((error as Error).message).toMatch(message);
  });

  it('names every bad entry of a list at once, with natsServersOf as with the schema', () => {
    expect(() => natsServersOf('ws://a:1,nats://ok:4222,nats://b:0x', 'NATS_URL')).toThrow(/invalid NATS_URL: entry 1 "ws:\/\/a:1" has scheme ws .*; entry 3 "nats:\/\/b:0x" is not a URL/);
  });
});

describe('NATS_STREAM_REPLICAS', () => {
  it('defaults to 1 and takes 1 to 5', () => {
    expect(parse(Env, {}).NATS_STREAM_REPLICAS).toBe(1);
    expect(parse(Env, { NATS_STREAM_REPLICAS: '3' }).NATS_STREAM_REPLICAS).toBe(3);
    expect(parse(Env, { NATS_STREAM_REPLICAS: '5' }).NATS_STREAM_REPLICAS).toBe(5);
  });

  it.each(['0', '6', '2.5', 'three'])('rejects %j', (value) => {
    expect(() => parse(Env, { NATS_STREAM_REPLICAS: value })).toThrow(/NATS_STREAM_REPLICAS/);
  });
});

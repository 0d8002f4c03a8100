import { describe, expect, it } from '@jest/globals';
import { loadRelayConfig } from './relay.config.js';

describe('relay configuration', () => {
  it('fills the defaults around the one required variable', () => {
    expect(loadRelayConfig({ DATABASE_URL: 'postgres://u@h/db' })).toEqual({
      DATABASE_URL: 'postgres://u@h/db',
      NATS_URL: ['nats://127.0.0.1:4222'],
      NATS_STREAM_REPLICAS: 1,
      RELAY_NAME: 'outbox-relay',
      RELAY_BATCH_SIZE: 1000,
      RELAY_SOURCE: 'changeover',
      EVENTS_STREAM: 'CHANGEOVER_EVENTS',
      PG_POOL_SIZE: 2,
    });
  });

  it('refuses to start on a bad value, naming the variable', () => {
    expect(() => loadRelayConfig({})).toThrow(/DATABASE_URL/);
    expect(() => loadRelayConfig({ DATABASE_URL: 'postgres://h/db', RELAY_BATCH_SIZE: 'many' })).toThrow(/RELAY_BATCH_SIZE/);
    expect(() => loadRelayConfig({ DATABASE_URL: 'postgres://h/db', EVENTS_STREAM: 'a.b' })).toThrow(/EVENTS_STREAM/);
    expect(() => loadRelayConfig({ DATABASE_URL: 'postgres://h/db', NATS_URL: 'nats://a:4222,http://b' })).toThrow(/NATS_URL: .*entry 2 "http:\/\/b"/);
    expect(() => loadRelayConfig({ DATABASE_URL: 'postgres://h/db', NATS_STREAM_REPLICAS: '7' })).toThrow(/NATS_STREAM_REPLICAS/);
  });

  it('takes a cluster as a comma-separated server list and a replica count', () => {
    const c = loadRelayConfig({ DATABASE_URL: 'postgres://h/db', NATS_URL: 'nats://n1:4222,nats://n2:4222,nats://n3:4222', NATS_STREAM_REPLICAS: '3' });
    expect([c.NATS_URL, c.NATS_STREAM_REPLICAS]).toEqual([['nats://n1:4222', 'nats://n2:4222', 'nats://n3:4222'], 3]);
  });
});

import { describe, expect, it } from '@jest/globals';
import { loadRelayConfig } from './relay.config.js';

describe('relay configuration', () => {
  it('fills the defaults around the one required variable', () => {
    expect(loadRelayConfig({ DATABASE_URL: 'postgres://u@h/db' })).toEqual({
      DATABASE_URL: 'postgres://u@h/db',
      NATS_URL: 'nats://127.0.0.1:4222',
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
  });
});

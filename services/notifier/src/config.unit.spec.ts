import { describe, expect, it } from '@jest/globals';
import { loadConfig } from './config.js';

describe('config', () => {
  it('reads NATS_URL as a server list and NATS_STREAM_REPLICAS, naming a bad list entry', () => {
    const c = loadConfig({ DATABASE_URL: 'x', NATS_URL: 'nats://n1:4222, nats://n2:4222,nats://n3:4222', NATS_STREAM_REPLICAS: '3' });
    expect([c.NATS_URL, c.NATS_STREAM_REPLICAS]).toEqual([['nats://n1:4222', 'nats://n2:4222', 'nats://n3:4222'], 3]);
    expect(() => loadConfig({ DATABASE_URL: 'x', NATS_URL: 'nats://n1:4222,' })).toThrow(/NATS_URL: .*entry 2 "" is empty/);
    expect(() => loadConfig({ DATABASE_URL: 'x', NATS_STREAM_REPLICAS: '0' })).toThrow(/NATS_STREAM_REPLICAS/);
  });

  it('has a default for every variable except DATABASE_URL', () => {
    const c = loadConfig({ DATABASE_URL: 'postgres://x/y' });
    expect(c.NOTIFIER_HTTP_PORT).toBe(7103);
    expect(c.NOTIFIER_CONSUMER_NAME).toBe('notifier');
    expect(c.NOTIFIER_DEFAULT_SUBSCRIPTIONS).toEqual([]);
  });

  it('fails with a message naming the bad variable', () => {
    expect(() => loadConfig({})).toThrow(/DATABASE_URL/);
    expect(() => loadConfig({ DATABASE_URL: 'x', NOTIFIER_MAX_ATTEMPTS: 'zero' })).toThrow(/NOTIFIER_MAX_ATTEMPTS/);
    expect(() => loadConfig({ DATABASE_URL: 'x', SMTP_URL: 'http://mail' })).toThrow(/SMTP_URL/);
    expect(() => loadConfig({ DATABASE_URL: 'x', NOTIFIER_DEFAULT_SUBSCRIPTIONS: '{"name":"s","channel":{"type":"slack","url":"nope"}}' })).toThrow(/NOTIFIER_DEFAULT_SUBSCRIPTIONS/);
  });

  it('reads default subscriptions as one JSON object or an array', () => {
    const c = loadConfig({ DATABASE_URL: 'x', NOTIFIER_DEFAULT_SUBSCRIPTIONS: '{"name":"ops","channel":{"type":"slack","url":"https://hooks.slack.com/services/T/B/X"}}' });
    expect(c.NOTIFIER_DEFAULT_SUBSCRIPTIONS).toEqual([{ name: 'ops', channel: { type: 'slack', url: 'https://hooks.slack.com/services/T/B/X' }, filter: {} }]);
  });
});

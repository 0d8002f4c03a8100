import { describe, expect, it } from '@jest/globals';
import { loadConfig } from './config.js';

const DB = 'postgres://notifier@127.0.0.1:5432/changeover';

describe('config', () => {
  it('reads DATABASE_URL with one host or several, naming a bad part', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://n@pg-1:5432,pg-2:5433/changeover?target_session_attrs=read-write' }).DATABASE_URL).toBe('postgres://n@pg-1:5432,pg-2:5433/changeover?target_session_attrs=read-write');
    expect(() => loadConfig({ DATABASE_URL: 'x' })).toThrow(/DATABASE_URL: must be a postgres:\/\/ URL/);
    expect(() => loadConfig({ DATABASE_URL: 'postgres://n@pg-1,pg-2:70000/changeover' })).toThrow(/DATABASE_URL: host 2 "pg-2:70000": port must be 1\.\.65535/);
  });

  it('reads NATS_URL as a server list and NATS_STREAM_REPLICAS, naming a bad list entry', () => {
    const c = loadConfig({ DATABASE_URL: DB, NATS_URL: 'nats://n1:4222, nats://n2:4222,nats://n3:4222', NATS_STREAM_REPLICAS: '3' });
    expect([c.NATS_URL, c.NATS_STREAM_REPLICAS]).toEqual([['nats://n1:4222', 'nats://n2:4222', 'nats://n3:4222'], 3]);
    expect(() => loadConfig({ DATABASE_URL: DB, NATS_URL: 'nats://n1:4222,' })).toThrow(/NATS_URL: .*entry 2 "" is empty/);
    expect(() => loadConfig({ DATABASE_URL: DB, NATS_STREAM_REPLICAS: '0' })).toThrow(/NATS_STREAM_REPLICAS/);
  });

  it('has a default for every variable except DATABASE_URL', () => {
    const c = loadConfig({ DATABASE_URL: 'postgres://x/y' });
    expect(c.NOTIFIER_HTTP_PORT).toBe(7103);
    expect(c.NOTIFIER_CONSUMER_NAME).toBe('notifier');
    expect(c.NOTIFIER_DEFAULT_SUBSCRIPTIONS).toEqual([]);
  });

  it('fails with a message naming the bad variable', () => {
    expect(() => loadConfig({})).toThrow(/DATABASE_URL/);
    expect(() => loadConfig({ DATABASE_URL: DB, NOTIFIER_MAX_ATTEMPTS: 'zero' })).toThrow(/NOTIFIER_MAX_ATTEMPTS/);
    expect(() => loadConfig({ DATABASE_URL: DB, SMTP_URL: 'http://mail' })).toThrow(/SMTP_URL/);
    expect(() => loadConfig({ DATABASE_URL: DB, NOTIFIER_DEFAULT_SUBSCRIPTIONS: '{"name":"s","channel":{"type":"slack","url":"nope"}}' })).toThrow(/NOTIFIER_DEFAULT_SUBSCRIPTIONS/);
  });

  it('reads default subscriptions as one JSON object or an array', () => {
    const c = loadConfig({ DATABASE_URL: DB, NOTIFIER_DEFAULT_SUBSCRIPTIONS: '{"name":"ops","channel":{"type":"slack","url":"https://hooks.slack.com/services/T/B/X"}}' });
    expect(c.NOTIFIER_DEFAULT_SUBSCRIPTIONS).toEqual([{ name: 'ops', channel: { type: 'slack', url: 'https://hooks.slack.com/services/T/B/X' }, filter: {} }]);
  });
});

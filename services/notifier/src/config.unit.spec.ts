import { describe, expect, it } from '@jest/globals';
import { loadConfig } from './config.js';

describe('config', () => {
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

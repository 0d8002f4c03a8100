import { describe, expect, it } from '@jest/globals';
import { isChangeoverError } from '@changeover/contracts';
import { loadConfig } from './config.js';

const code = (fn: () => unknown) => {
  try {
    fn();
    return 'ok';
  } catch (e) {
    return isChangeoverError(e) ? e.code : `untyped: ${String(e)}`;
  }
};

describe('rollout configuration: auth and limits', () => {
  it('reads NATS_URL as a server list and NATS_STREAM_REPLICAS, naming a bad list entry', () => {
    expect(loadConfig({ NATS_URL: 'nats://n1:4222, nats://n2:4222,nats://n3:4222', NATS_STREAM_REPLICAS: '3' })).toMatchObject({ natsServers: ['nats://n1:4222', 'nats://n2:4222', 'nats://n3:4222'], streamReplicas: 3 });
    expect(code(() => loadConfig({ NATS_URL: 'nats://n1:4222,n2 :4222' }))).toBe('VALIDATION_FAILED');
    expect(() => loadConfig({ NATS_URL: 'nats://n1:4222,http://n2' })).toThrow(/NATS_URL: .*entry 2 "http:\/\/n2" has scheme http/);
    expect(code(() => loadConfig({ NATS_STREAM_REPLICAS: 'three' }))).toBe('VALIDATION_FAILED');
  });

  it('should turn authentication on unless CHANGEOVER_AUTH=off is set', () => {
    expect(loadConfig({}).auth).toEqual({ enabled: true, statementTimeoutMs: 10_000 });
    expect(loadConfig({ CHANGEOVER_AUTH: 'off' }).auth.enabled).toBe(false);
    expect(loadConfig({ CHANGEOVER_ADMIN_TOKEN: 'x'.repeat(40) }).auth.adminToken).toBe('x'.repeat(40));
  });

  it('should refuse a weak bootstrap token and out-of-range limits at start-up', () => {
    expect(code(() => loadConfig({ CHANGEOVER_ADMIN_TOKEN: 'admin' }))).toBe('VALIDATION_FAILED');
    expect(code(() => loadConfig({ CHANGEOVER_AUTH: 'maybe' }))).toBe('VALIDATION_FAILED');
    expect(code(() => loadConfig({ ROLLOUT_MAX_BODY_BYTES: '10' }))).toBe('VALIDATION_FAILED');
    expect(code(() => loadConfig({ ROLLOUT_HELLO_RATE_PER_S: '0' }))).toBe('VALIDATION_FAILED');
    expect(code(() => loadConfig({ CHANGEOVER_DB_STATEMENT_TIMEOUT_MS: '50' }))).toBe('VALIDATION_FAILED');
  });

  it('should read the limits', () => {
    const c = loadConfig({ ROLLOUT_MAX_BODY_BYTES: '2048', ROLLOUT_MAX_IMAGE_BYTES: '4096', ROLLOUT_HELLO_RATE_PER_S: '2', ROLLOUT_HELLO_BURST: '7', CHANGEOVER_DB_STATEMENT_TIMEOUT_MS: '3000' });
    expect(c).toMatchObject({ maxBodyBytes: 2048, maxImageBytes: 4096, helloRate: { perSecond: 2, burst: 7 }, auth: { statementTimeoutMs: 3000 } });
  });

  it('should read the live stream limits and refuse them out of range', () => {
    expect(loadConfig({}).streams).toEqual({ max: 200, maxMs: 600_000 });
    expect(loadConfig({ ROLLOUT_MAX_STREAMS: '5', ROLLOUT_STREAM_MAX_MS: '2000' }).streams).toEqual({ max: 5, maxMs: 2000 });
    for (const env of [{ ROLLOUT_MAX_STREAMS: '0' }, { ROLLOUT_MAX_STREAMS: 'many' }, { ROLLOUT_MAX_STREAMS: '10001' }, { ROLLOUT_STREAM_MAX_MS: '999' }, { ROLLOUT_STREAM_MAX_MS: '86400001' }]) expect([env, code(() => loadConfig(env))]).toEqual([env, 'VALIDATION_FAILED']);
    expect(() => loadConfig({ ROLLOUT_MAX_STREAMS: '0' })).toThrow(/ROLLOUT_MAX_STREAMS/);
  });
});

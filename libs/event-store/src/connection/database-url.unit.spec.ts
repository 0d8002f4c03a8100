import { describe, expect, it } from '@jest/globals';
import { isChangeoverError } from '@changeover/contracts';
import { DatabaseUrl, needsFailover, parseDatabaseUrl } from './database-url.js';

function refusal(url: unknown): { code: string; message: string } {
  try {
    parseDatabaseUrl(url);
  } catch (e) {
    if (isChangeoverError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error(`expected ${String(url)} to be refused`);
}

describe('parseDatabaseUrl', () => {
  it('reads one host as node-postgres does, with the default port', () => {
    const t = parseDatabaseUrl('postgres://app:secret@db.internal/changeover?sslmode=require');
    expect(t).toEqual({ hosts: [{ host: 'db.internal', port: 5432 }], database: 'changeover', targetSessionAttrs: 'any', singleHostUrl: 'postgres://app:secret@db.internal/changeover?sslmode=require' });
    expect(needsFailover(t)).toBe(false);
  });

  it('reads several hosts in order and target_session_attrs, leaving a one-host URL for the driver', () => {
    const t = parseDatabaseUrl('postgresql://app@pg-1:5433,pg-2,[::1]:6000/changeover?target_session_attrs=read-write&application_name=rollout');
    expect(t.hosts).toEqual([
      { host: 'pg-1', port: 5433 },
      { host: 'pg-2', port: 5432 },
      { host: '::1', port: 6000 },
    ]);
    expect(t.targetSessionAttrs).toBe('read-write');
    expect(t.singleHostUrl).toBe('postgresql://app@pg-1:5433/changeover?application_name=rollout');
    expect(needsFailover(t)).toBe(true);
  });

  it.each([
    ['mysql://h/db', /must be a postgres:\/\/ URL/],
    ['postgres:///db', /has no host/],
    ['postgres://u@h1:5432,h2:99999/db', /host 2 "h2:99999": port must be 1\.\.65535/],
    ['postgres://u@h1:5432,,h3/db', /host 2 "" is not host\[:port\]/],
    ['postgres://u@h1:x/db', /host 1 "h1:x" is not host\[:port\]/],
    ['postgres://u@h1,h2/db?target_session_attrs=standby', /target_session_attrs "standby" must be one of any, read-write/],
    ['postgres://u@h1/db name', /must be a postgres:\/\/ URL/],
    [42, /must be a postgres:\/\/ URL/],
  ])('refuses %p with VALIDATION_FAILED naming the bad part', (url, message) => {
    const r = refusal(url);
    expect(r.code).toBe('VALIDATION_FAILED');
    expect(r.message).toMatch(/^DATABASE_URL: /);
    expect(r.message).toMatch(message);
  });

  it('is the check of the services\' DATABASE_URL variable', () => {
    expect(DatabaseUrl.safeParse('postgres://u@h1:5432,h2:5432/db?target_session_attrs=read-write').success).toBe(true);
    const bad = DatabaseUrl.safeParse('postgres://u@h1:5432,h2:0/db');
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.message).toBe('host 2 "h2:0": port must be 1..65535');
  });
});

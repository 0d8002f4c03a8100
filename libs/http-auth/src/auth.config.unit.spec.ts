import { describe, expect, it } from '@jest/globals';
import { isChangeoverError } from '@changeover/contracts';
import { loadAuthConfig } from './auth.config.js';
import { withStatementTimeout } from './statement-timeout.js';

const code = (fn: () => unknown) => {
  try {
    fn();
    return 'ok';
  } catch (e) {
    return isChangeoverError(e) ? e.code : 'untyped';
  }
};

describe('auth configuration', () => {
  it('should be on by default and off only when asked for', () => {
    expect(loadAuthConfig({})).toEqual({ enabled: true, statementTimeoutMs: 10_000 });
    expect(loadAuthConfig({ CHANGEOVER_AUTH: 'off' }).enabled).toBe(false);
    expect(code(() => loadAuthConfig({ CHANGEOVER_AUTH: 'no' }))).toBe('VALIDATION_FAILED');
  });

  it('should refuse a short or odd bootstrap admin token', () => {
    expect(code(() => loadAuthConfig({ CHANGEOVER_ADMIN_TOKEN: 'short' }))).toBe('VALIDATION_FAILED');
    expect(code(() => loadAuthConfig({ CHANGEOVER_ADMIN_TOKEN: 'x'.repeat(40) + ' ' }))).toBe('VALIDATION_FAILED');
    expect(loadAuthConfig({ CHANGEOVER_ADMIN_TOKEN: 'a'.repeat(32) }).adminToken).toBe('a'.repeat(32));
  });

  it('should validate the statement timeout and set it on a database URL', () => {
    expect(code(() => loadAuthConfig({ CHANGEOVER_DB_STATEMENT_TIMEOUT_MS: '5' }))).toBe('VALIDATION_FAILED');
    const url = new URL(withStatementTimeout('postgres://u@h:5432/db?options=-c%20search_path%3Dx', 2500));
    expect(url.searchParams.get('options')).toBe('-c search_path=x -c statement_timeout=2500');
    expect(new URL(withStatementTimeout(url.toString(), 100)).searchParams.get('options')).toBe('-c search_path=x -c statement_timeout=100');
  });

  it('should keep every host of a multi-host URL when it sets the statement timeout', () => {
    const url = withStatementTimeout('postgres://u@h1:5432,h2:5433/db?target_session_attrs=read-write', 5000);
    expect(url).toBe('postgres://u@h1:5432,h2:5433/db?target_session_attrs=read-write&options=-c+statement_timeout%3D5000');
    expect(new URLSearchParams(url.split('?')[1]).get('options')).toBe('-c statement_timeout=5000');
  });
});

describe('auth variables left empty', () => {
  it('should count an empty value as unset', () => {
    expect(loadAuthConfig({ CHANGEOVER_AUTH: '', CHANGEOVER_ADMIN_TOKEN: '', CHANGEOVER_DB_STATEMENT_TIMEOUT_MS: '' })).toEqual({ enabled: true, statementTimeoutMs: 10_000 });
  });
});

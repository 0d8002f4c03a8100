import { ChangeoverError } from '@changeover/contracts';
import { z } from 'zod';

// DATABASE_URL with one host (what node-postgres reads) or several, as libpq writes them:
// postgres://user:pass@h1:5432,h2:5432/db?target_session_attrs=read-write

export type TargetSessionAttrs = 'any' | 'read-write';

export interface DatabaseHost {
  host: string;
  port: number;
}

export interface DatabaseTarget {
  /** In the URL's order: connections try them in that order and keep the first that fits. */
  hosts: DatabaseHost[];
  database: string;
  /** 'read-write' skips hosts in recovery or read-only (a standby); 'any' takes the first that answers. */
  targetSessionAttrs: TargetSessionAttrs;
  /**
   * The same URL with one host (the first) and without target_session_attrs, for node-postgres and
   * TypeORM, which read one host: a connection of the failover client replaces host and port.
   */
  singleHostUrl: string;
}

const SESSION_ATTRS: readonly string[] = ['any', 'read-write'];

function invalid(field: string, message: string): ChangeoverError {
  return new ChangeoverError('VALIDATION_FAILED', `${field}: ${message}`, { field });
}

function parseHost(field: string, text: string, index: number): DatabaseHost {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d*))?$/.exec(text);
  if (!m || !m[1]) throw invalid(field, `host ${index + 1} "${text}" is not host[:port]`);
  const port = m[2] === undefined || m[2] === '' ? 5432 : Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw invalid(field, `host ${index + 1} "${text}": port must be 1..65535`);
  return { host: m[1].replace(/^\[|\]$/g, ''), port };
}

/**
 * Parses and checks a postgres:// URL with one or more comma-separated hosts; throws
 * VALIDATION_FAILED naming the bad part (`field` is the variable's name in the message).
 */
export function parseDatabaseUrl(url: unknown, field = 'DATABASE_URL'): DatabaseTarget {
  if (typeof url !== 'string') throw invalid(field, 'must be a postgres:// URL');
  const m = /^(postgres(?:ql)?:\/\/)(?:([^@/?#]*)@)?([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/.exec(url);
  if (!m || /\s/.test(url)) throw invalid(field, 'must be a postgres:// URL (postgres://user@host[:port][,host2[:port]…]/database)');
  const [, scheme, userInfo, hostList = '', path = '', search = ''] = m;
  if (hostList === '') throw invalid(field, 'has no host');
  const hosts = hostList.split(',').map((h, i) => parseHost(field, h, i));
  const database = decodeURIComponent(path.replace(/^\//, ''));
  if (database.includes('/')) throw invalid(field, `database "${database}" must not contain "/"`);
  const params = new URLSearchParams(search);
  const attrs = params.get('target_session_attrs') ?? 'any';
  if (!SESSION_ATTRS.includes(attrs)) throw invalid(field, `target_session_attrs "${attrs}" must be one of ${SESSION_ATTRS.join(', ')}`);
  params.delete('target_session_attrs');
  const first = hostList.split(',')[0]!;
  const rest = params.toString();
  const singleHostUrl = `${scheme}${userInfo === undefined ? '' : `${userInfo}@`}${first}${path}${rest ? `?${rest}` : ''}`;
  try {
    new URL(singleHostUrl);
  } catch {
    throw invalid(field, 'must be a postgres:// URL');
  }
  return { hosts, database, targetSessionAttrs: attrs as TargetSessionAttrs, singleHostUrl };
}

/** Whether the URL needs the failover client: several hosts, or a read-write session asked for. */
export function needsFailover(target: DatabaseTarget): boolean {
  return target.hosts.length > 1 || target.targetSessionAttrs === 'read-write';
}

/** The DATABASE_URL variable of a service's config: one or several hosts, checked by parseDatabaseUrl. */
export const DatabaseUrl = z.string().superRefine((value, ctx) => {
  try {
    parseDatabaseUrl(value, 'DATABASE_URL');
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e instanceof Error ? e.message : String(e)).replace(/^DATABASE_URL: /, '') });
  }
});

import { z } from 'zod';
import { ChangeoverError } from './errors.js';

export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

const SCHEMES = new Set(['nats:', 'tls:']);

/** Why one NATS_URL entry is not a server address, or null when it is one. */
function entryProblem(entry: string): string | null {
  if (entry.length === 0) return 'is empty';
  if (/\s/.test(entry)) return 'contains whitespace';
  // nats.js accepts host:port without a scheme; parse it the way the client will.
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(entry) ? entry : `nats://${entry}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    return 'is not a URL';
  }
  if (!SCHEMES.has(url.protocol)) return `has scheme ${url.protocol.slice(0, -1)} (expected nats or tls)`;
  if (!url.hostname) return 'has no host';
  if ((url.pathname && url.pathname !== '/') || url.search || url.hash) return 'has a path, query or fragment';
  return null;
}

/**
 * Splits a comma-separated NATS server list ("nats://a:4222,nats://b:4222" or "a:4222,b:4222") into
 * the `servers` array of connect(). Every bad entry is named with its position, so a typo in the
 * third server of a cluster is found from the start-up message alone.
 */
export function parseNatsServers(text: string): { servers: string[]; problems: string[] } {
  const entries = text.split(',').map((e) => e.trim());
  const problems: string[] = [];
  entries.forEach((entry, i) => {
    const problem = entryProblem(entry);
    if (problem) problems.push(`entry ${i + 1} "${entry.slice(0, 200)}" ${problem}`);
  });
  const servers = [...new Set(entries)];
  if (!problems.length && servers.length > 64) problems.push(`${servers.length} servers (at most 64)`);
  return { servers, problems };
}

/** NATS_URL of every process: one server or a comma-separated list, validated, as connect()'s `servers` array. */
export const NatsServers = z
  .string()
  .default(DEFAULT_NATS_URL)
  .transform((text, ctx) => {
    const { servers, problems } = parseNatsServers(text);
    if (problems.length) {
      ctx.addIssue({ code: 'custom', message: `must be a comma-separated list of NATS servers: ${problems.join('; ')}` });
      return z.NEVER;
    }
    return servers;
  });

/** The same list outside a zod configuration (CLI, demo): VALIDATION_FAILED naming the bad entries. */
export function natsServersOf(text: string | undefined, variable = 'NATS_URL'): string[] {
  const { servers, problems } = parseNatsServers(text ?? DEFAULT_NATS_URL);
  if (problems.length) throw new ChangeoverError('VALIDATION_FAILED', `invalid ${variable}: ${problems.join('; ')}`, { field: variable, problems });
  return servers;
}

/**
 * NATS_STREAM_REPLICAS: the replicas of every stream, KV bucket and object store the product creates
 * (1 on a single server; 3 on a three-server cluster, so losing one server loses no data).
 */
export const NatsStreamReplicas = z.coerce.number().int().min(1).max(5).default(1);

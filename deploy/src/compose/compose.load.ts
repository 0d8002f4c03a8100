import { parse } from 'yaml';

export interface ComposeHealthcheck {
  test: string[] | string;
  interval?: string;
  timeout?: string;
  retries?: number;
  start_period?: string;
}

export interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile?: string; args?: Record<string, string> };
  command?: string[] | string;
  environment: Record<string, string>;
  ports: string[];
  volumes: string[];
  healthcheck?: ComposeHealthcheck;
  depends_on: Record<string, { condition: string }>;
  restart?: string;
}

export interface ComposeFile {
  name?: string;
  services: Record<string, ComposeService>;
  volumes: Record<string, unknown>;
}

/**
 * Compose's variable interpolation: `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}` and `$$`.
 * Unset variables without a default become '' as Compose does (it warns).
 */
export function interpolate(text: string, vars: Record<string, string | undefined>): string {
  return text.replace(/\$\$|\$\{(\w+)(?:(:?)([-?])((?:[^}$]|\$\{[^}]*\})*))?\}|\$(\w+)/g, (whole, name?: string, colon?: string, op?: string, arg?: string, bare?: string) => {
    if (whole === '$$') return '$';
    if (bare) return vars[bare] ?? '';
    const value = vars[name!];
    const unset = colon ? value === undefined || value === '' : value === undefined;
    if (!unset) return value!;
    if (op === '-') return interpolate(arg ?? '', vars);
    if (op === '?') throw new Error(`variable ${name} is required: ${arg}`);
    return '';
  });
}

const asStringMap = (value: unknown, what: string): Record<string, string> => {
  if (value === undefined || value === null) return {};
  if (Array.isArray(value)) {
    return Object.fromEntries(value.map((item) => {
      const [k, ...v] = String(item).split('=');
      return [k!, v.join('=')];
    }));
  }
  if (typeof value !== 'object') throw new Error(`${what}: expected a map`);
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, v === null ? '' : String(v)]));
};

const asConditions = (value: unknown): Record<string, { condition: string }> => {
  if (value === undefined) return {};
  if (Array.isArray(value)) return Object.fromEntries(value.map((name) => [String(name), { condition: 'service_started' }]));
  return value as Record<string, { condition: string }>;
};

/** Parses a Compose file as `docker compose config` would see it: interpolated, merge keys resolved, environments as string maps. */
export function loadCompose(text: string, vars: Record<string, string | undefined> = {}): ComposeFile {
  const doc = parse(interpolate(text, vars), { merge: true }) as { name?: string; services?: Record<string, Record<string, unknown>>; volumes?: Record<string, unknown> };
  if (!doc?.services) throw new Error('compose file has no services');
  const services: Record<string, ComposeService> = {};
  for (const [name, raw] of Object.entries(doc.services)) {
    services[name] = {
      ...(raw as Partial<ComposeService>),
      environment: asStringMap(raw['environment'], `${name}.environment`),
      ports: ((raw['ports'] as unknown[] | undefined) ?? []).map(String),
      volumes: ((raw['volumes'] as unknown[] | undefined) ?? []).map(String),
      depends_on: asConditions(raw['depends_on']),
    };
  }
  return { name: doc.name, services, volumes: doc.volumes ?? {} };
}

/** "host:container" or "ip:host:container" → the two ports (a bare container port publishes to a random host port). */
export function parsePort(spec: string): { host?: number; container: number } {
  const parts = spec.split('/')[0]!.split(':');
  const container = Number(parts[parts.length - 1]);
  const host = parts.length >= 2 ? Number(parts[parts.length - 2]) : undefined;
  return { host, container };
}

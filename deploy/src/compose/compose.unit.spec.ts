import { describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { readRepoFile, repoPath } from '../repo.js';
import { checkEnvironment } from '../service-configs.js';
import { SERVICES, type DeployedService } from '../services.js';
import { interpolate, loadCompose, parsePort, type ComposeService } from './compose.load.js';

const text = readRepoFile('deploy/compose.yaml');
const compose = loadCompose(text);
const entries = Object.entries(compose.services);

/** Compose services that run one of our images, with the process they run. */
const ours = entries.flatMap(([name, svc]) => {
  const image = svc.image ?? '';
  const kind = SERVICES.find((s) => image.startsWith(`changeover/${s.name}:`));
  return kind && !svc.command ? [{ name, svc, kind }] : [];
});
const byKind = (kind: DeployedService['name']) => ours.filter((o) => o.kind.name === kind);
/** The NATS servers of the file (nats1, nats2, …). */
const natsServers = entries.filter(([, svc]) => /^nats:/.test(svc.image ?? ''));
const flag = (cmd: string[], name: string) => cmd.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const healthUrl = (svc: ComposeService) => {
  const test = Array.isArray(svc.healthcheck?.test) ? svc.healthcheck!.test.join(' ') : (svc.healthcheck?.test ?? '');
  return /https?:\/\/[^\s"']+/.exec(test)?.[0];
};

describe('compose loader', () => {
  it('interpolates like Compose: defaults, empty vs unset, escapes, required', () => {
    expect(interpolate('${A:-x} ${A-y} $$B ${C}', {})).toBe('x y $B ');
    expect(interpolate('${A:-x} ${A-y}', { A: '' })).toBe('x ');
    expect(interpolate('${A:-${B:-z}}', {})).toBe('z');
    expect(() => interpolate('${A:?set A}', {})).toThrow('set A');
  });

  it('reads port specs', () => {
    expect(parsePort('7111:7110')).toEqual({ host: 7111, container: 7110 });
    expect(parsePort('127.0.0.1:5432:5432/tcp')).toEqual({ host: 5432, container: 5432 });
    expect(parsePort('9000')).toEqual({ host: undefined, container: 9000 });
  });
});

describe('deploy/compose.yaml', () => {
  it('runs the engines, a migrations step, two instances of every service and three agents', () => {
    expect(Object.keys(compose.services)).toEqual(expect.arrayContaining(['nats1', 'nats2', 'nats3', 'postgres', 'jaeger', 'migrate']));
    for (const kind of ['registry', 'rollout', 'notifier'] as const) {
      expect({ kind, instances: byKind(kind).map((o) => o.name) }).toEqual({ kind, instances: [kind, `${kind}-2`] });
      // The second is the first with its own host port: same image, environment, dependencies and health check.
      const [first, second] = byKind(kind).map((o) => o.svc);
      expect({ ...second, ports: [] }).toEqual({ ...first, ports: [] });
    }
    expect(byKind('node-agent')).toHaveLength(3);
  });

  it('builds every image of ours from the root Dockerfile with the matching SERVICE', () => {
    for (const [name, svc] of entries.filter(([, s]) => s.image?.startsWith('changeover/'))) {
      const kind = /^changeover\/([\w-]+):/.exec(svc.image!)![1];
      expect({ name, context: svc.build?.context, dockerfile: svc.build?.dockerfile, service: svc.build?.args?.['SERVICE'] }).toEqual({ name, context: '..', dockerfile: 'Dockerfile', service: kind });
    }
    expect(existsSync(repoPath('deploy', '..', 'Dockerfile'))).toBe(true);
  });

  it("gives every process an environment its own config schema accepts, with no unknown variable", () => {
    for (const { name, svc, kind } of ours) expect({ name, problems: checkEnvironment(kind.name, svc.environment) }).toEqual({ name, problems: [] });
  });

  it('still validates when the operator sets the optional variables', () => {
    const vars = { CHANGEOVER_DB_PASSWORD: 's3cret', CHANGEOVER_LOG_LEVEL: 'debug', CHANGEOVER_ADMIN_TOKEN: 'a'.repeat(64), CHANGEOVER_VERSION: '1.2.3' };
    for (const { name, svc, kind } of loadOurs(vars)) expect({ name, problems: checkEnvironment(kind.name, svc.environment) }).toEqual({ name, problems: [] });
  });

  it('publishes each service on the port it listens on, once, and health-checks that port', () => {
    const hostPorts: number[] = [];
    for (const { name, svc, kind } of ours) {
      const listens = Number(svc.environment[kind.portVariable]);
      expect({ name, listens }).toEqual({ name, listens: kind.port });
      const ports = svc.ports.map(parsePort);
      expect({ name, containerPorts: ports.map((p) => p.container) }).toEqual({ name, containerPorts: [listens] });
      const url = new URL(healthUrl(svc) ?? 'http://missing');
      expect({ name, port: Number(url.port), path: url.pathname }).toEqual({ name, port: listens, path: kind.ready });
    }
    for (const svc of Object.values(compose.services)) hostPorts.push(...svc.ports.map(parsePort).flatMap((p) => (p.host ? [p.host] : [])));
    expect(new Set(hostPorts).size).toBe(hostPorts.length);
  });

  it('wires every process to Jaeger over OTLP/HTTP with its own service name', () => {
    const jaeger = compose.services['jaeger']!;
    expect(jaeger.image).toMatch(/^jaegertracing\/all-in-one:/);
    expect(jaeger.environment['COLLECTOR_OTLP_ENABLED']).toBe('true');
    const names = new Map<string, string>();
    for (const { name, svc, kind } of ours) {
      expect({ name, endpoint: svc.environment['OTEL_EXPORTER_OTLP_ENDPOINT'] }).toEqual({ name, endpoint: 'http://jaeger:4318' });
      expect({ name, dependsOnJaeger: 'jaeger' in svc.depends_on }).toEqual({ name, dependsOnJaeger: true });
      const serviceName = svc.environment['OTEL_SERVICE_NAME'];
      expect({ name, serviceName }).toEqual({ name, serviceName: `changeover-${kind.name}` });
      names.set(kind.name, serviceName!);
    }
    expect(names.size).toBe(SERVICES.length);
  });

  it('points DATABASE_URL and NATS_URL at the engines in this file, with matching credentials', () => {
    const pg = compose.services['postgres']!.environment;
    const expected = `postgres://${pg['POSTGRES_USER']}:${pg['POSTGRES_PASSWORD']}@postgres:5432/${pg['POSTGRES_DB']}`;
    for (const [name, svc] of entries) {
      if ('DATABASE_URL' in svc.environment) {
        expect({ name, url: svc.environment['DATABASE_URL'] }).toEqual({ name, url: expected });
        expect({ name, postgres: svc.depends_on['postgres']?.condition }).toEqual({ name, postgres: 'service_healthy' });
      }
      if ('NATS_URL' in svc.environment) {
        // Every server of the cluster, so a client reconnects to another when one is down.
        expect({ name, url: svc.environment['NATS_URL'] }).toEqual({ name, url: natsServers.map(([n]) => `nats://${n}:4222`).join(',') });
        for (const [n] of natsServers) expect({ name, nats: n, condition: svc.depends_on[n]?.condition }).toEqual({ name, nats: n, condition: 'service_healthy' });
        expect({ name, replicas: svc.environment['NATS_STREAM_REPLICAS'] }).toEqual({ name, replicas: String(natsServers.length) });
      }
    }
  });

  it('runs NATS 2.10 or newer as a three-server JetStream cluster, each server on its own volume, routed to the other two', () => {
    expect(natsServers.map(([n]) => n)).toEqual(['nats1', 'nats2', 'nats3']);
    const names = new Set<string>();
    const volumes = new Set<string>();
    for (const [name, nats] of natsServers) {
      const [major, minor] = /^nats:(\d+)\.(\d+)/.exec(nats.image ?? '')!.slice(1).map(Number);
      expect(major! > 2 || (major === 2 && minor! >= 10)).toBe(true);
      const cmd = ([] as string[]).concat(nats.command ?? []);
      expect(cmd.some((a) => a === '--jetstream' || a === '-js')).toBe(true);
      const storeDir = flag(cmd, 'store_dir')!;
      const volume = nats.volumes.find((v) => v.endsWith(`:${storeDir}`));
      expect({ name, volume: volume?.split(':')[0] }).toEqual({ name, volume: `${name}-data` });
      volumes.add(volume!);
      names.add(flag(cmd, 'server_name')!);
      expect({ name, cluster: flag(cmd, 'cluster_name') }).toEqual({ name, cluster: 'changeover' });
      const clusterPort = new URL(flag(cmd, 'cluster')!).port;
      const routes = flag(cmd, 'routes')!.split(',').map((r) => new URL(r));
      expect({ name, routes: routes.map((r) => r.host).sort() }).toEqual({ name, routes: natsServers.filter(([n]) => n !== name).map(([n]) => `${n}:${clusterPort}`).sort() });
      // Healthy once JetStream is current with the cluster (a meta leader exists), not merely enabled.
      expect(healthUrl(nats)).toBe(`http://127.0.0.1:${flag(cmd, 'http_port')}/healthz`);
    }
    expect(names.size).toBe(3);
    expect(volumes.size).toBe(3);
  });

  it('keeps Postgres data and each agent state directory on named volumes', () => {
    expect(compose.services['postgres']!.volumes).toContain('postgres-data:/var/lib/postgresql/data');
    const dirs = new Set<string>();
    for (const { name, svc } of byKind('node-agent')) {
      const dir = svc.environment['AGENT_STATE_DIR']!;
      const mount = svc.volumes.find((v) => v.endsWith(`:${dir}`));
      expect({ name, mount: mount?.split(':')[0] }).toEqual({ name, mount: `${name}-state` });
      dirs.add(mount!);
    }
    expect(dirs.size).toBe(3);
    for (const svc of Object.values(compose.services)) {
      for (const v of svc.volumes) {
        const source = v.split(':')[0]!;
        if (!source.startsWith('.') && !source.startsWith('/')) expect(Object.keys(compose.volumes)).toContain(source);
      }
    }
  });

  it('gives the three agents distinct node ids and more than one class', () => {
    const agents = byKind('node-agent').map((a) => a.svc.environment);
    expect(new Set(agents.map((e) => e['NODE_ID'])).size).toBe(3);
    expect(new Set(agents.map((e) => e['NODE_CLASS'])).size).toBeGreaterThan(1);
  });

  it('orders start-up by health: conditions name real services and fit what they wait for', () => {
    for (const [name, svc] of entries) {
      for (const [dep, { condition }] of Object.entries(svc.depends_on)) {
        const target = compose.services[dep];
        expect({ name, dep, exists: Boolean(target) }).toEqual({ name, dep, exists: true });
        if (condition === 'service_healthy') expect({ name, dep, healthcheck: Boolean(target!.healthcheck) }).toEqual({ name, dep, healthcheck: true });
        if (condition === 'service_completed_successfully') expect({ name, dep, restart: target!.restart }).toEqual({ name, dep, restart: 'no' });
      }
    }
    for (const { name, svc } of ours.filter((o) => o.kind.name !== 'node-agent')) {
      expect({ name, migrate: svc.depends_on['migrate']?.condition }).toEqual({ name, migrate: 'service_completed_successfully' });
    }
    for (const { name, svc } of byKind('node-agent')) expect({ name, registry: svc.depends_on['registry']?.condition }).toEqual({ name, registry: 'service_healthy' });
    expect(dependencyCycle()).toBeUndefined();
  });

  it('migrates with a script the image carries, before the services start', () => {
    const migrate = compose.services['migrate']!;
    const cmd = ([] as string[]).concat(migrate.command ?? []);
    expect(cmd.slice(0, 2)).toEqual(['node', 'deploy/docker/migrate.mjs']);
    expect(existsSync(repoPath(cmd[1]!))).toBe(true);
    expect(migrate.image).toMatch(/^changeover\/(registry|rollout|notifier):/);
    expect(migrate.depends_on['postgres']?.condition).toBe('service_healthy');
  });
});

function loadOurs(vars: Record<string, string>) {
  const file = loadCompose(text, vars);
  return ours.map((o) => ({ ...o, svc: file.services[o.name]! }));
}

function dependencyCycle(): string | undefined {
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, path: string[]): string | undefined => {
    if (state.get(name) === 'done') return undefined;
    if (state.get(name) === 'visiting') return [...path, name].join(' → ');
    state.set(name, 'visiting');
    for (const dep of Object.keys(compose.services[name]?.depends_on ?? {})) {
      const cycle = visit(dep, [...path, name]);
      if (cycle) return cycle;
    }
    state.set(name, 'done');
    return undefined;
  };
  for (const name of Object.keys(compose.services)) {
    const cycle = visit(name, []);
    if (cycle) return cycle;
  }
  return undefined;
}

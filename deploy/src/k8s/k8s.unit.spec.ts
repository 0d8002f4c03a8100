import { describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { IDaemonSet, IDeployment } from 'kubernetes-models/apps/v1';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1';
import type { IConfigMap, IContainer, IPodSpec, ISecret, IService } from 'kubernetes-models/v1';
import { readRepoFile, repoPath } from '../repo.js';
import { checkEnvironment, type Env } from '../service-configs.js';
import { SERVICES, type DeployedService } from '../services.js';
import { loadKustomization, readKustomization, readManifests, validateManifest, type Manifest } from './k8s.load.js';

const BASE = 'deploy/k8s/base';
const base = loadKustomization(BASE);
const kustomization = readKustomization(BASE);
const of = <T>(kind: string) => base.filter((m) => m.kind === kind) as unknown as (T & Manifest)[];
const workloads = [...of<IDeployment>('Deployment'), ...of<IDaemonSet>('DaemonSet')];
const podSpec = (w: IDeployment | IDaemonSet): IPodSpec => w.spec!.template.spec!;
const podLabels = (w: IDeployment | IDaemonSet): Record<string, string> => w.spec!.template.metadata?.labels ?? {};
const matches = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
const configMaps = new Map(of<IConfigMap>('ConfigMap').map((c) => [c.metadata!.name!, c.data ?? {}]));
const secrets = new Map(of<ISecret>('Secret').map((s) => [s.metadata!.name!, { ...(s.stringData ?? {}), ...Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()])) }]));
/** The service a container runs, from its image (changeover/<service>). */
const serviceOf = (c: IContainer): DeployedService | undefined => SERVICES.find((s) => c.image === `changeover/${s.name}`);
const mainContainers = workloads.flatMap((w) => podSpec(w).containers.map((c) => ({ w, c, svc: serviceOf(c)! })));
const initContainers = workloads.flatMap((w) => (podSpec(w).initContainers ?? []).map((c) => ({ w, c })));
const isMigrate = (c: IContainer) => (c.command ?? []).join(' ') === 'node deploy/docker/migrate.mjs';

/** Sample values the downward API would give. */
const FIELD_VALUES: Record<string, string> = { 'spec.nodeName': 'worker-1', 'metadata.name': 'rollout-7d9c8b6f5-x2x9q', 'metadata.namespace': 'changeover' };

/** The environment a container would see, with ConfigMap, Secret and downward-API references resolved. */
function resolveEnv(c: IContainer): Env {
  const env: Env = {};
  for (const e of c.env ?? []) {
    const from = e.valueFrom;
    if (from?.configMapKeyRef) env[e.name] = configMaps.get(from.configMapKeyRef.name!)?.[from.configMapKeyRef.key];
    else if (from?.secretKeyRef) env[e.name] = secrets.get(from.secretKeyRef.name!)?.[from.secretKeyRef.key];
    else if (from?.fieldRef) env[e.name] = FIELD_VALUES[from.fieldRef.fieldPath];
    else env[e.name] = e.value ?? '';
  }
  return env;
}

describe('deploy/k8s/base', () => {
  it('validates every manifest against the Kubernetes API schema (kubernetes-models)', () => {
    expect(base.length).toBeGreaterThan(0);
    expect(base.map(validateManifest).filter(Boolean)).toEqual([]);
  });

  it('puts everything in the changeover namespace, which it creates', () => {
    expect(of('Namespace').map((n) => n.metadata.name)).toEqual([kustomization.namespace]);
    for (const m of base.filter((x) => x.kind !== 'Namespace')) expect(m.metadata.namespace).toBe('changeover');
  });

  it('runs registry, rollout and notifier as Deployments of 2 replicas each and the agent as a DaemonSet', () => {
    const deployments = Object.fromEntries(of<IDeployment>('Deployment').map((d) => [d.metadata!.name!, d.spec!.replicas]));
    expect(deployments).toEqual({ notifier: 2, registry: 2, rollout: 2 });
    expect(of<IDaemonSet>('DaemonSet').map((d) => d.metadata!.name)).toEqual(['node-agent']);
    for (const { w, c, svc } of mainContainers) expect({ workload: w.metadata!.name, image: c.image, service: svc?.name }).toEqual({ workload: w.metadata!.name, image: c.image, service: w.metadata!.name });
  });

  it("selects each workload's own pods", () => {
    for (const w of workloads) {
      const selector = w.spec!.selector.matchLabels ?? {};
      expect(Object.keys(selector).length).toBeGreaterThan(0);
      expect({ name: w.metadata!.name, matches: matches(selector, podLabels(w)) }).toEqual({ name: w.metadata!.name, matches: true });
      expect(workloads.filter((o) => matches(selector, podLabels(o))).map((o) => o.metadata!.name)).toEqual([w.metadata!.name]);
    }
  });

  it('routes every Service to one workload and to ports its containers declare', () => {
    for (const s of of<IService>('Service')) {
      const targets = workloads.filter((w) => matches(s.spec!.selector ?? {}, podLabels(w)));
      expect({ service: s.metadata!.name, targets: targets.map((t) => t.metadata!.name) }).toEqual({ service: s.metadata!.name, targets: [s.metadata!.name] });
      const ports = podSpec(targets[0]!).containers.flatMap((c) => c.ports ?? []);
      for (const p of s.spec!.ports ?? []) {
        const target = p.targetPort ?? p.port;
        const found = ports.find((cp) => (typeof target === 'number' ? cp.containerPort === target : cp.name === target));
        expect({ service: s.metadata!.name, target, found: Boolean(found) }).toEqual({ service: s.metadata!.name, target, found: true });
      }
    }
    expect(of<IService>('Service').map((s) => s.metadata!.name).sort()).toEqual(workloads.map((w) => w.metadata!.name).sort());
  });

  it('guards each Deployment with a PodDisruptionBudget that still lets nodes drain', () => {
    const pdbs = of<IPodDisruptionBudget>('PodDisruptionBudget');
    for (const d of of<IDeployment>('Deployment')) {
      const mine = pdbs.filter((p) => matches(p.spec!.selector?.matchLabels ?? {}, podLabels(d)));
      expect({ deployment: d.metadata!.name, pdbs: mine.length }).toEqual({ deployment: d.metadata!.name, pdbs: 1 });
      const { minAvailable, maxUnavailable } = mine[0]!.spec!;
      const allowed = maxUnavailable !== undefined ? Number(maxUnavailable) : (d.spec!.replicas ?? 1) - Number(minAvailable);
      expect({ deployment: d.metadata!.name, disruptionsAllowed: allowed >= 1 }).toEqual({ deployment: d.metadata!.name, disruptionsAllowed: true });
    }
    for (const p of pdbs) expect(workloads.some((w) => matches(p.spec!.selector?.matchLabels ?? {}, podLabels(w)))).toBe(true);
  });

  it('refers only to ConfigMap and Secret keys that exist', () => {
    for (const { c } of [...mainContainers, ...initContainers]) {
      for (const e of c.env ?? []) {
        const cm = e.valueFrom?.configMapKeyRef;
        const sec = e.valueFrom?.secretKeyRef;
        if (cm) expect({ container: c.name, env: e.name, key: cm.key in (configMaps.get(cm.name!) ?? {}) }).toEqual({ container: c.name, env: e.name, key: true });
        if (sec) expect({ container: c.name, env: e.name, key: sec.key in (secrets.get(sec.name!) ?? {}) }).toEqual({ container: c.name, env: e.name, key: true });
      }
      for (const from of c.envFrom ?? []) {
        if (from.configMapRef) expect(configMaps.has(from.configMapRef.name!)).toBe(true);
        if (from.secretRef) expect(secrets.has(from.secretRef.name!)).toBe(true);
      }
    }
  });

  it("sets only variables each container's config schema knows, with values it accepts", () => {
    for (const { c, svc } of mainContainers) expect({ container: c.name, problems: checkEnvironment(svc.name, resolveEnv(c)) }).toEqual({ container: c.name, problems: [] });
    for (const { c } of initContainers.filter(({ c }) => isMigrate(c))) {
      expect((c.env ?? []).map((e) => e.name)).toEqual(['DATABASE_URL']);
      expect(resolveEnv(c)['DATABASE_URL']).toMatch(/^postgres:\/\//);
    }
  });

  it('probes liveness, readiness and start-up on declared ports and the paths each process serves', () => {
    for (const { c, svc } of mainContainers) {
      const declared = new Set((c.ports ?? []).flatMap((p) => [p.name, p.containerPort]));
      const port = (c.ports ?? []).find((p) => p.containerPort === svc.port);
      expect({ container: c.name, port: port?.containerPort }).toEqual({ container: c.name, port: Number(resolveEnv(c)[svc.portVariable]) });
      const probes = { startupProbe: svc.live, livenessProbe: svc.live, readinessProbe: svc.ready } as const;
      for (const [probe, path] of Object.entries(probes)) {
        const get = c[probe as keyof typeof probes]?.httpGet;
        expect({ container: c.name, probe, path: get?.path, declared: declared.has(get?.port as string | number) }).toEqual({ container: c.name, probe, path, declared: true });
      }
    }
  });

  it('sets resource requests and limits on every container', () => {
    for (const { c } of [...mainContainers, ...initContainers]) {
      expect({ container: c.name, requests: Object.keys(c.resources?.requests ?? {}).sort() }).toEqual({ container: c.name, requests: ['cpu', 'memory'] });
      expect({ container: c.name, memoryLimit: Boolean(c.resources?.limits?.['memory']) }).toEqual({ container: c.name, memoryLimit: true });
    }
  });

  it('runs the processes as non-root; only the state-directory init step is root, with CHOWN and FOWNER only', () => {
    for (const { w, c } of mainContainers) {
      const ctx = { ...podSpec(w).securityContext, ...c.securityContext };
      expect({ container: c.name, nonRoot: ctx.runAsNonRoot === true && ctx.runAsUser !== 0, escalation: c.securityContext?.allowPrivilegeEscalation }).toEqual({ container: c.name, nonRoot: true, escalation: false });
    }
    for (const { c } of initContainers.filter(({ c }) => c.securityContext?.runAsUser === 0)) {
      expect(c.name).toBe('prepare-state-dir');
      expect(c.securityContext?.capabilities).toEqual({ drop: ['ALL'], add: ['CHOWN', 'FOWNER'] });
    }
  });

  it("wires every process to the trace collector's OTLP/HTTP endpoint under its own service name", () => {
    for (const { c, svc } of mainContainers) {
      const env = resolveEnv(c);
      expect({ container: c.name, endpoint: new URL(env['OTEL_EXPORTER_OTLP_ENDPOINT'] ?? 'x:').port }).toEqual({ container: c.name, endpoint: '4318' });
      expect(env['OTEL_SERVICE_NAME']).toBe(`changeover-${svc.name}`);
    }
  });

  it('gives each agent its node name as node id and a state directory on the node', () => {
    const agent = of<IDaemonSet>('DaemonSet')[0]!;
    const c = podSpec(agent).containers[0]!;
    expect(c.env?.find((e) => e.name === 'NODE_ID')?.valueFrom?.fieldRef?.fieldPath).toBe('spec.nodeName');
    const stateDir = resolveEnv(c)['AGENT_STATE_DIR'];
    const mount = c.volumeMounts?.find((m) => m.mountPath === stateDir);
    const volume = podSpec(agent).volumes?.find((v) => v.name === mount?.name);
    expect(volume?.hostPath?.path).toBeDefined();
    for (const init of podSpec(agent).initContainers ?? []) expect(init.volumeMounts?.some((m) => m.name === mount!.name && m.mountPath === stateDir)).toBe(true);
  });

  it('lets every image be renamed by the kustomization', () => {
    const images = new Set([...mainContainers, ...initContainers].map(({ c }) => c.image));
    expect([...images].sort()).toEqual((kustomization.images ?? []).map((i) => i.name).sort());
  });
});

describe('deploy/k8s/overlays', () => {
  const overlays = ['deploy/k8s/overlays/production'];
  it.each(overlays)('%s only renames, scales and patches what the base has', (dir) => {
    const k = readKustomization(dir);
    expect(k.resources).toContain('../../base');
    const used = new Set([...mainContainers, ...initContainers].map(({ c }) => c.image));
    for (const image of k.images ?? []) expect(used.has(image.name)).toBe(true);
    const deployments = new Set(of<IDeployment>('Deployment').map((d) => d.metadata!.name));
    for (const r of k.replicas ?? []) expect(deployments.has(r.name)).toBe(true);
    for (const patch of k.patches ?? []) {
      expect(existsSync(repoPath(dir, patch.path!))).toBe(true);
      for (const doc of readManifests(join(dir, patch.path!))) {
        const target = base.find((m) => m.kind === doc.kind && m.metadata.name === doc.metadata.name);
        expect({ patch: patch.path, target: Boolean(target) }).toEqual({ patch: patch.path, target: true });
        if (doc.kind === 'ConfigMap') for (const key of Object.keys((doc['data'] as object) ?? {})) expect(configMaps.get(doc.metadata.name)).toHaveProperty([key]);
        if (doc.kind === 'Deployment') {
          const names = podSpec(target as unknown as IDeployment).containers.map((c) => c.name);
          for (const c of podSpec(doc as unknown as IDeployment).containers) expect(names).toContain(c.name);
        }
      }
    }
  });
});

describe('deploy/k8s/dependencies', () => {
  const dbUrl = new URL(secrets.get('changeover-secrets')!['DATABASE_URL']!);
  const natsUrls = configMaps.get('changeover-config')!['NATS_URL']!.split(',').map((u) => new URL(u));

  it('configures the official NATS chart for a 3-node cluster with JetStream on disk, behind the NATS_URL service', () => {
    const values = parse(readRepoFile('deploy/k8s/dependencies/nats-values.yaml')) as {
      config: { cluster: { enabled: boolean; replicas: number }; jetstream: { enabled: boolean; fileStore: { enabled: boolean; pvc: { enabled: boolean; size: string } } } };
      container: { image: { tag: string } };
    };
    expect(values.config.cluster).toEqual({ enabled: true, replicas: 3 });
    expect(values.config.jetstream.enabled).toBe(true);
    expect(values.config.jetstream.fileStore).toMatchObject({ enabled: true, pvc: { enabled: true } });
    const [major, minor] = values.container.image.tag.split('.').map(Number);
    expect(major! > 2 || (major === 2 && minor! >= 10)).toBe(true);
    // Release "nats" in our namespace: every server of its StatefulSet by pod name on the headless Service.
    expect(natsUrls.map((u) => `${u.protocol}//${u.host}`)).toEqual(
      Array.from({ length: values.config.cluster.replicas }, (_, i) => `nats://nats-${i}.nats-headless.${kustomization.namespace}.svc:4222`),
    );
    for (const { c } of mainContainers) expect({ container: c.name, servers: resolveEnv(c)['NATS_URL']?.split(',').length }).toEqual({ container: c.name, servers: values.config.cluster.replicas });
  });

  it('keeps every stream on as many replicas as the chart runs servers, in every process that creates streams', () => {
    const values = parse(readRepoFile('deploy/k8s/dependencies/nats-values.yaml')) as { config: { cluster: { replicas: number } } };
    expect(configMaps.get('changeover-config')!['NATS_STREAM_REPLICAS']).toBe(String(values.config.cluster.replicas));
    for (const { c } of mainContainers) expect({ container: c.name, replicas: resolveEnv(c)['NATS_STREAM_REPLICAS'] }).toEqual({ container: c.name, replicas: String(values.config.cluster.replicas) });
  });

  it('runs Postgres as a replicated CloudNativePG cluster whose primary, database and credentials match DATABASE_URL', () => {
    const docs = readManifests('deploy/k8s/dependencies/postgres-cluster.yaml');
    const cluster = docs.find((d) => d.kind === 'Cluster')! as Manifest & { spec: { instances: number; bootstrap: { initdb: { database: string; owner: string; secret: { name: string } } } } };
    expect(cluster.apiVersion).toBe('postgresql.cnpg.io/v1');
    expect(cluster.spec.instances).toBeGreaterThanOrEqual(3);
    expect(cluster.metadata.namespace).toBe(kustomization.namespace);
    const initdb = cluster.spec.bootstrap.initdb;
    expect(dbUrl.hostname).toBe(`${cluster.metadata.name}-rw.${cluster.metadata.namespace}.svc`);
    expect(dbUrl.pathname).toBe(`/${initdb.database}`);
    // Every new connection checks it reached a writable server (not a primary demoted by a switchover).
    expect(dbUrl.searchParams.get('target_session_attrs')).toBe('read-write');
    const credentials = docs.find((d) => d.kind === 'Secret' && d.metadata.name === initdb.secret.name)!;
    expect(validateManifest(credentials)).toBeUndefined();
    expect(credentials['type']).toBe('kubernetes.io/basic-auth');
    expect(credentials['stringData']).toEqual({ username: initdb.owner, password: decodeURIComponent(dbUrl.password) });
    expect(decodeURIComponent(dbUrl.username)).toBe(initdb.owner);
  });
});

/** The processes the deployment runs, with where their config schema and build output live. */
export interface DeployedService {
  /** Compose service name, Kubernetes workload name and Dockerfile target. */
  name: 'registry' | 'rollout' | 'notifier' | 'node-agent';
  /** Workspace folder, relative to the repository root. */
  dir: string;
  /** Variable that holds the HTTP port the probes and /metrics answer on. */
  portVariable: string;
  port: number;
}

export const SERVICES: readonly DeployedService[] = [
  { name: 'registry', dir: 'services/registry', portVariable: 'REGISTRY_HTTP_PORT', port: 7101 },
  { name: 'rollout', dir: 'services/rollout', portVariable: 'ROLLOUT_HTTP_PORT', port: 7102 },
  { name: 'notifier', dir: 'services/notifier', portVariable: 'NOTIFIER_HTTP_PORT', port: 7103 },
  { name: 'node-agent', dir: 'services/node-agent', portVariable: 'AGENT_HEALTH_PORT', port: 7110 },
];

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The processes the deployment runs, with where they live and what their health server answers. */
export interface DeployedService {
  /** Image name (changeover/<name>), SERVICE build argument, Compose and Kubernetes workload name. */
  name: 'registry' | 'rollout' | 'notifier' | 'node-agent';
  /** Workspace folder, relative to the repository root. */
  dir: string;
  /** Variable that holds the HTTP port the probes and /metrics answer on. */
  portVariable: string;
  port: number;
  live: string;
  ready: string;
  metrics: string;
}

const NAMES = ['registry', 'rollout', 'notifier', 'node-agent'] as const;

// deploy/docker/processes.json is what the image's health probe reads; one source for both.
const file = join(dirname(fileURLToPath(import.meta.url)), '..', 'docker', 'processes.json');
const processes = JSON.parse(readFileSync(file, 'utf8')) as Record<string, Omit<DeployedService, 'name' | 'dir'>>;

export const SERVICES: readonly DeployedService[] = NAMES.map((name) => {
  const p = processes[name];
  if (!p) throw new Error(`${file}: no entry for ${name}`);
  return { name, dir: `services/${name}`, ...p };
});

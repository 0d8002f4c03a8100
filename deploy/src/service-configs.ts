// The services' own config schemas are the source of truth for what a deployment may set.
import { RegistryEnv, loadConfig as loadRegistryConfig } from '../../services/registry/src/config.js';
import { RolloutConfigSchema, loadConfig as loadRolloutConfig } from '../../services/rollout/src/config.js';
import { NotifierConfig, loadConfig as loadNotifierConfig } from '../../services/notifier/src/config.js';
import { AgentConfig, loadConfig as loadAgentConfig } from '../../services/node-agent/src/config.js';
import { TelemetryEnv } from '../../libs/telemetry/src/sdk/telemetry-config.js';
import type { DeployedService } from './services.js';

export type Env = Record<string, string | undefined>;

/** What the checks need of a zod object schema. */
export interface EnvSchema {
  shape: Record<string, unknown>;
  safeParse(value: unknown): { success: boolean; error?: { issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }> } };
}

export interface ServiceConfig {
  schema: EnvSchema;
  /** The service's start-up loader: the schema plus its cross-field rules; throws on a bad environment. */
  load(env: Env): unknown;
}

export const SERVICE_CONFIGS: Record<DeployedService['name'], ServiceConfig> = {
  registry: { schema: RegistryEnv, load: (env) => loadRegistryConfig(env) },
  rollout: { schema: RolloutConfigSchema, load: (env) => loadRolloutConfig(env) },
  notifier: { schema: NotifierConfig, load: (env) => loadNotifierConfig(env) },
  'node-agent': { schema: AgentConfig, load: (env) => loadAgentConfig(env, []) },
};

/** OTEL_* variables, read by the telemetry preload in every process. */
export const TELEMETRY_SCHEMA: EnvSchema = TelemetryEnv;

/** Variables the runtime itself reads, set by the image or the orchestrator. */
export const RUNTIME_VARIABLES = new Set(['NODE_ENV', 'NODE_OPTIONS', 'CHANGEOVER_SERVICE']);

/** Every variable a process of this service reads: its config schema, the telemetry variables and the runtime's. */
export function knownVariables(service: DeployedService['name']): Set<string> {
  return new Set([...Object.keys(SERVICE_CONFIGS[service].schema.shape), ...Object.keys(TELEMETRY_SCHEMA.shape), ...RUNTIME_VARIABLES]);
}

/** Problems with an environment for a service: unknown names, schema failures, loader failures. Empty when fine. */
export function checkEnvironment(service: DeployedService['name'], env: Env): string[] {
  const problems: string[] = [];
  const known = knownVariables(service);
  for (const name of Object.keys(env)) if (!known.has(name)) problems.push(`${name}: not a variable ${service} reads`);
  const cfg = SERVICE_CONFIGS[service];
  for (const [what, schema] of [[service, cfg.schema], ['telemetry', TELEMETRY_SCHEMA]] as const) {
    const parsed = schema.safeParse(env);
    if (!parsed.success) for (const i of parsed.error?.issues ?? []) problems.push(`${what} ${i.path.map(String).join('.')}: ${i.message}`);
  }
  if (problems.length === 0) {
    try {
      cfg.load(env);
    } catch (e) {
      problems.push(`${service} loadConfig: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return problems;
}

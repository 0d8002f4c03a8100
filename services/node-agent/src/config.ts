import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { ClassId, NatsServers, NatsStreamReplicas, NodeId, RETIRED_KEY_POLICIES, SemVer } from '@changeover/contracts';
import { contractProcessorType } from './host-platform.js';

// Every variable the agent reads, validated once at start-up. CLI flags override the environment.

// No default on a host whose architecture is neither x86_64 nor arm64: the variable must then be set.
const defaultArch = contractProcessorType(process.arch) ?? undefined;
const rate = z.coerce.number().min(0).max(1);

const Labels = z
  .string()
  .default('')
  .transform((s, ctx) => {
    const out: Record<string, string> = {};
    for (const pair of s.split(',').map((x) => x.trim()).filter(Boolean)) {
      const [k, v, ...rest] = pair.split('=');
      if (!k || v === undefined || rest.length) {
        ctx.addIssue({ code: 'custom', message: `label ${JSON.stringify(pair)} is not key=value` });
        return z.NEVER;
      }
      out[k] = v;
    }
    return out;
  });

const VersionRangeText = z
  .string()
  .default('1-1')
  .transform((s, ctx) => {
    const m = /^(\d+)(?:-(\d+))?$/.exec(s.trim());
    const min = m ? Number(m[1]) : NaN;
    const max = m ? Number(m[2] ?? m[1]) : NaN;
    if (!m || min < 1 || max < min) {
      ctx.addIssue({ code: 'custom', message: 'must be "min-max" with 1 ≤ min ≤ max, e.g. "1-2"' });
      return z.NEVER;
    }
    return { min, max };
  });

export const FAULT_POINTS = ['after-fetch', 'after-prepare', 'mid-switch', 'before-confirm'] as const;

export const AgentConfig = z.object({
  /** One NATS server or a comma-separated list of a cluster's servers (nats://a:4222,nats://b:4222). */
  NATS_URL: NatsServers,
  /** Replicas of every stream, KV bucket and object store this process creates (3 on a three-server cluster). */
  NATS_STREAM_REPLICAS: NatsStreamReplicas,
  /** Path of the node's .creds file (from enrollment). Unset: connect without authentication. */
  NATS_CREDS: z.string().min(1).optional(),
  NODE_ID: NodeId.default(hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 64) || 'node'),
  NODE_CLASS: ClassId.default('default'),
  NODE_PROCESSOR_TYPE: defaultArch ? z.enum(['x86_64', 'arm64']).default(defaultArch) : z.enum(['x86_64', 'arm64']),
  NODE_LABELS: Labels,
  AGENT_STATE_DIR: z.string().min(1).default('/var/lib/changeover-agent'),
  /** Default: agent.sock in the state directory. */
  AGENT_SOCKET: z.string().optional(),
  AGENT_VERSION: SemVer.default('0.1.0'),
  AGENT_CLUSTER_VERSIONS: VersionRangeText,
  /** Process ids the agent does not start that may use the local API, each with a credential file under <state dir>/credentials. */
  AGENT_EXTERNAL_PROCESSES: z
    .string()
    .default('')
    .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean))
    .pipe(z.array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9@._-]{0,199}$/, 'process ids are [A-Za-z0-9@._-], at most 200 characters')).max(1000)),
  /** How group JOIN/LEAVE reach the logs: `direct` JetStream appends, or `mediated` by the rollout service (needed with confined NATS_CREDS; the default then). */
  AGENT_GROUP_APPENDS: z.enum(['direct', 'mediated']).optional(),
  /** The package that carries the agent itself: committing another version of it restarts the agent into it (through the launcher). */
  AGENT_PACKAGE: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,127}$/).default('changeover-agent'),
  /** After an agent upgrade: how long the members that left may take to rejoin before the upgrade is reported failed. */
  AGENT_UPGRADE_REJOIN_TIMEOUT_MS: z.coerce.number().int().min(100).max(3_600_000).default(30_000),
  AGENT_HEARTBEAT_MS: z.coerce.number().int().min(100).max(3_600_000).default(10_000),
  AGENT_TRUST_ROOTS: z.string().default(''),
  /** Packages signed by a key marked retired in AGENT_TRUST_ROOTS: still trusted (`accept`) or refused. */
  AGENT_RETIRED_KEYS: z.enum(RETIRED_KEY_POLICIES).default('accept'),
  AGENT_MIN_FREE_DISK_MB: z.coerce.number().int().min(0).default(100),
  /** Versions of each package kept on disk besides the active one (the first is the previous set's, the regression target); older module files are deleted. */
  AGENT_KEEP_VERSIONS: z.coerce.number().int().min(1).max(16).default(1),
  /** Size at which a managed process's log file (stdout and stderr) is rotated. */
  AGENT_LOG_MAX_BYTES: z.coerce.number().int().min(1024).max(1024 ** 4).default(10 * 1024 * 1024),
  /** Rotated log files kept per module (<module>.log.1 … .N) besides the current one. */
  AGENT_LOG_KEEP: z.coerce.number().int().min(1).max(100).default(5),
  AGENT_HEALTH_PORT: z.coerce.number().int().min(0).max(65535).default(0),
  AGENT_REGISTRY_TIMEOUT_MS: z.coerce.number().int().positive().max(600_000).default(5000),
  /** Share of nodes whose part in a rollout is traced (vetoing and failing nodes always are); only with an OTLP endpoint. */
  AGENT_TRACE_SAMPLE_RATIO: rate.default(0.01),
  /** Test only: stop dead (SIGKILL) at this changeover step. */
  AGENT_FAULT_AT: z.enum(FAULT_POINTS).optional(),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
  // Simulated fleet (`--simulate N`).
  SIMULATE: z.coerce.number().int().min(0).max(1_000_000).default(0),
  SIM_NODE_PREFIX: z.string().regex(/^[A-Za-z0-9_-]{1,40}$/).default('sim'),
  SIM_VETO_RATE: rate.default(0),
  SIM_SLOW_RATE: rate.default(0),
  SIM_FAIL_RATE: rate.default(0),
  SIM_ARM_RATIO: rate.default(0),
  /** Hellos and heartbeats a second for the whole simulated fleet; 0: unpaced. */
  SIM_REPORT_RATE: z.coerce.number().int().min(0).max(10_000_000).default(0),
});
export type AgentConfig = z.infer<typeof AgentConfig> & { AGENT_SOCKET: string };

/** CLI flags and the variable each sets. */
const FLAGS: Record<string, string> = {
  simulate: 'SIMULATE',
  class: 'NODE_CLASS',
  'node-prefix': 'SIM_NODE_PREFIX',
  'veto-rate': 'SIM_VETO_RATE',
  'slow-rate': 'SIM_SLOW_RATE',
  'fail-rate': 'SIM_FAIL_RATE',
  'arm-ratio': 'SIM_ARM_RATIO',
  'report-rate': 'SIM_REPORT_RATE',
  'nats-url': 'NATS_URL',
  'node-id': 'NODE_ID',
  'state-dir': 'AGENT_STATE_DIR',
  socket: 'AGENT_SOCKET',
  'heartbeat-ms': 'AGENT_HEARTBEAT_MS',
  'health-port': 'AGENT_HEALTH_PORT',
  'trust-roots': 'AGENT_TRUST_ROOTS',
  'nats-creds': 'NATS_CREDS',
  'log-level': 'LOG_LEVEL',
  'trace-sample-ratio': 'AGENT_TRACE_SAMPLE_RATIO',
};

export function parseFlags(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${arg}`);
    const [name, inline] = arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    const variable = FLAGS[name];
    if (!variable) throw new Error(`unknown flag --${name} (known: ${Object.keys(FLAGS).map((f) => `--${f}`).join(', ')})`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new Error(`flag --${name} needs a value`);
    out[variable] = value;
  }
  return out;
}

/** Validates env + flags; throws an Error whose message names every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, argv: string[] = []): AgentConfig {
  const merged = { ...env, ...parseFlags(argv) };
  const picked = Object.fromEntries(Object.keys(AgentConfig.shape).map((k) => [k, merged[k] === '' && k !== 'AGENT_TRUST_ROOTS' && k !== 'NODE_LABELS' ? undefined : merged[k]]));
  const result = AgentConfig.safeParse(picked);
  if (!result.success) {
    throw new Error(`invalid node-agent configuration: ${result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const creds = result.data.NATS_CREDS;
  if (creds !== undefined) {
    let text = '';
    try {
      text = readFileSync(creds, 'utf8');
    } catch (e) {
      throw new Error(`invalid node-agent configuration: NATS_CREDS: cannot read ${creds} (${e instanceof Error ? e.message : String(e)})`);
    }
    if (!text.includes('BEGIN NATS USER JWT') || !text.includes('BEGIN USER NKEY SEED')) throw new Error(`invalid node-agent configuration: NATS_CREDS: ${creds} is not a NATS .creds file`);
    // Node credentials name their node: a real agent with another node's file would be refused every subject.
    const user = credsUserName(text);
    if (result.data.SIMULATE === 0 && user?.startsWith('node:') && user !== `node:${result.data.NODE_ID}`) {
      throw new Error(`invalid node-agent configuration: NATS_CREDS: ${creds} was issued to ${user.slice(5)}, not NODE_ID ${result.data.NODE_ID}`);
    }
  }
  return { ...result.data, AGENT_SOCKET: result.data.AGENT_SOCKET ?? join(result.data.AGENT_STATE_DIR, 'agent.sock') };
}

/** The `name` claim of the user JWT in a .creds file (`node:<id>` for node credentials), if readable. */
function credsUserName(text: string): string | undefined {
  const jwt = /-----BEGIN NATS USER JWT-----\s*([A-Za-z0-9_.-]+)\s*-/.exec(text)?.[1];
  const payload = jwt?.split('.')[1];
  if (!payload) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    return claims && typeof claims === 'object' && 'name' in claims && typeof claims.name === 'string' ? claims.name : undefined;
  } catch {
    return undefined;
  }
}

/** The launcher's own settings (everything else passes through to the agent). */
export const LauncherConfig = z.object({
  AGENT_STATE_DIR: z.string().min(1).default('/var/lib/changeover-agent'),
  AGENT_PACKAGE: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,127}$/).default('changeover-agent'),
  /** How long an agent version started after a self-upgrade may take to come up before it is rolled back. */
  AGENT_UPGRADE_START_TIMEOUT_MS: z.coerce.number().int().min(100).max(3_600_000).default(60_000),
  /** How long such a version is watched once up (an exit or a failing health check rolls it back); 0 = none. */
  AGENT_UPGRADE_PROBATION_MS: z.coerce.number().int().min(0).max(3_600_000).default(10_000),
  /** The agent's health port the probation polls (`/health/ready`); 0 = the probation watches exits only. */
  AGENT_HEALTH_PORT: z.coerce.number().int().min(0).max(65535).default(0),
});
export type LauncherConfig = z.infer<typeof LauncherConfig>;

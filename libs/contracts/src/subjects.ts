import { ChangeoverError } from './errors.js';
import { assertId } from './ids.js';

// ─────────────────────────────────────────────────────────────────────────────
// WIRE CONTRACT. Deployed agents subscribe to these exact subjects: renaming or
// reshaping one breaks every agent in the field. Change only with a version bump.
// ─────────────────────────────────────────────────────────────────────────────

export const ROOT = 'changeover';

/** Commands the orchestrator sends to one node or a whole class. */
export const NODE_COMMANDS = ['propose', 'commit', 'abort', 'regress', 'validate'] as const;
export type NodeCommand = (typeof NODE_COMMANDS)[number];

/** Reports a node sends about itself; its id in the subject is what NATS permissions vouch for. */
export const AGENT_REPORTS = ['hello', 'heartbeat', 'vote', 'progress', 'inventory', 'validated'] as const;
export type AgentReport = (typeof AGENT_REPORTS)[number];

/**
 * Requests a node makes on its own agent subject (`changeover.agent.<node>.<op>`), answered on the
 * node's inbox — get-packages by the registry, group-append by the rollout service: a confined node
 * may publish nothing else (DESIGN §4, §10).
 */
export const AGENT_REQUESTS = ['get-packages', 'group-append'] as const;
export type AgentRequest = (typeof AGENT_REQUESTS)[number];

export const STREAMS = {
  /** Every domain event as a CloudEvent, relayed from Postgres by the outbox. */
  events: 'CHANGEOVER_EVENTS',
  /** One ordered membership log per group. */
  groups: 'CHANGEOVER_GROUPS',
} as const;

/** Content-addressed module blobs (key = digest). */
export const MODULE_BUCKET = 'changeover-modules';

/**
 * Update images on their way to the registry: a client puts the .tar.gz here in chunks and asks
 * the registry to import it by name (import-image), so no single message carries the image.
 */
export const IMAGE_UPLOAD_BUCKET = 'changeover-image-uploads';

function oneOf<T extends string>(what: string, allowed: readonly T[], value: string): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new ChangeoverError('VALIDATION_FAILED', `unknown ${what} ${JSON.stringify(value.slice(0, 40))}`);
}

const OP_PATTERN = /^[a-z][a-z0-9-]{0,63}$/;
function assertOp(op: string): string {
  if (OP_PATTERN.test(op)) return op;
  throw new ChangeoverError('VALIDATION_FAILED', `operation ${JSON.stringify(op.slice(0, 40))} is not a subject token`);
}

export const subjects = {
  /** changeover.node.<node>.<command> — orchestrator → one node. */
  node: (nodeId: string, command: NodeCommand) => `${ROOT}.node.${assertId('node', nodeId)}.${oneOf('command', NODE_COMMANDS, command)}`,
  /** changeover.node.<node>.> — everything addressed to one node. */
  nodeAll: (nodeId: string) => `${ROOT}.node.${assertId('node', nodeId)}.>`,
  /** changeover.class.<class>.<command> — one message for every node of a class. */
  class: (classId: string, command: NodeCommand) => `${ROOT}.class.${assertId('class', classId)}.${oneOf('command', NODE_COMMANDS, command)}`,
  classAll: (classId: string) => `${ROOT}.class.${assertId('class', classId)}.>`,
  /** changeover.agent.<node>.<report> — node → orchestrator. */
  agent: (nodeId: string, report: AgentReport) => `${ROOT}.agent.${assertId('node', nodeId)}.${oneOf('report', AGENT_REPORTS, report)}`,
  /** changeover.agent.<node>.> — what a node may publish. */
  agentAll: (nodeId: string) => `${ROOT}.agent.${assertId('node', nodeId)}.>`,
  /** changeover.agent.<node>.<request> — a node's request, served by the registry. */
  agentRequest: (nodeId: string, op: AgentRequest) => `${ROOT}.agent.${assertId('node', nodeId)}.${oneOf('request', AGENT_REQUESTS, op)}`,
  /** changeover.agent.*.<request> — the registry's side of one node request from all nodes. */
  agentRequestAny: (op: AgentRequest) => `${ROOT}.agent.*.${oneOf('request', AGENT_REQUESTS, op)}`,
  /** changeover.agent.*.<report> — the orchestrator's view of one report kind from all nodes. */
  agentAny: (report: AgentReport) => `${ROOT}.agent.*.${oneOf('report', AGENT_REPORTS, report)}`,
  /** changeover.registry.<op> — request/reply. */
  registry: (op: string) => `${ROOT}.registry.${assertOp(op)}`,
  /** changeover.rollout.<op> — request/reply. */
  rollout: (op: string) => `${ROOT}.rollout.${assertOp(op)}`,
  /** changeover.events.<aggregate>.<type> — JetStream CHANGEOVER_EVENTS. */
  event: (aggregate: string, type: string) => `${ROOT}.events.${assertOp(aggregate)}.${assertOp(type)}`,
  eventsAll: `${ROOT}.events.>`,
  /** changeover.group.<group>.membership — JetStream CHANGEOVER_GROUPS. */
  groupMembership: (groupId: string) => `${ROOT}.group.${assertId('group', groupId)}.membership`,
  groupsAll: `${ROOT}.group.*.membership`,
} as const;

export type ParsedSubject =
  | { kind: 'node'; nodeId: string; command: NodeCommand }
  | { kind: 'class'; classId: string; command: NodeCommand }
  | { kind: 'agent'; nodeId: string; report: AgentReport }
  | { kind: 'agent-request'; nodeId: string; op: AgentRequest }
  | { kind: 'registry'; op: string }
  | { kind: 'rollout'; op: string }
  | { kind: 'event'; aggregate: string; type: string }
  | { kind: 'group'; groupId: string };

/** Parses any Changeover subject; throws VALIDATION_FAILED / INVALID_ID on anything else. */
/**
 * True when `subject` is exactly the report subject of `nodeId` (a string comparison, no parsing):
 * the check every agent report gets that its body names the node its subject does.
 */
export function isAgentReportSubject(subject: string, nodeId: string, report: AgentReport): boolean {
  return subject.length === ROOT.length + 8 + nodeId.length + report.length && subject === `${ROOT}.agent.${nodeId}.${report}`;
}

export function parseSubject(subject: string): ParsedSubject {
  const parts = subject.split('.');
  if (parts[0] !== ROOT || parts.length < 3) throw new ChangeoverError('VALIDATION_FAILED', `not a changeover subject: ${subject.slice(0, 120)}`);
  const [, kind, a, b] = parts;
  const exact = (n: number) => {
    if (parts.length !== n) throw new ChangeoverError('VALIDATION_FAILED', `malformed ${kind} subject: ${subject.slice(0, 120)}`);
  };
  switch (kind) {
    case 'node':
      exact(4);
      return { kind, nodeId: assertId('node', a), command: oneOf('command', NODE_COMMANDS, b!) };
    case 'class':
      exact(4);
      return { kind, classId: assertId('class', a), command: oneOf('command', NODE_COMMANDS, b!) };
    case 'agent':
      exact(4);
      if ((AGENT_REQUESTS as readonly string[]).includes(b!)) return { kind: 'agent-request', nodeId: assertId('node', a), op: b as AgentRequest };
      return { kind, nodeId: assertId('node', a), report: oneOf('report', AGENT_REPORTS, b!) };
    case 'registry':
    case 'rollout':
      exact(3);
      return { kind, op: assertOp(a!) };
    case 'events':
      exact(4);
      return { kind: 'event', aggregate: assertOp(a!), type: assertOp(b!) };
    case 'group':
      exact(4);
      if (b !== 'membership') throw new ChangeoverError('VALIDATION_FAILED', `malformed group subject: ${subject.slice(0, 120)}`);
      return { kind: 'group', groupId: assertId('group', a) };
    default:
      throw new ChangeoverError('VALIDATION_FAILED', `unknown subject kind ${JSON.stringify(kind)}`);
  }
}

import { z } from 'zod';
import { CloudEvent } from '../cloudevents.js';
import { EVENT_SCHEMAS, EVENT_TYPES, type EventType } from '../events.js';
import { GroupAppendReply, GroupAppendRequest, MembershipMessage } from '../groups.js';
import { COMMAND_SCHEMAS, REPORT_SCHEMAS } from '../node-protocol.js';
import { Notification } from '../notification-message.js';
import { CreateSubscriptionRequest } from '../notifications.js';
import {
  ClassRecord,
  EnrollNodeReply,
  EnrollNodeRequest,
  GetClassRequest,
  GetPackagesReply,
  GetPackagesRequest,
  ImportImageReply,
  ImportImageRequest,
  ListNodesReply,
  ListNodesRequest,
  ProvidedApisReply,
  ProvidedApisRequest,
  ListPackagesReply,
  ListPackagesRequest,
  PublishPackageReply,
  PublishPackageRequest,
  RevokeNodeReply,
  RevokeNodeRequest,
  SelectModulesReply,
  SelectModulesRequest,
  SetClassRequest,
} from '../registry-api.js';
import { ROLLOUT_RPC } from '../rollout-rpc.js';
import { AGENT_REPORTS, AGENT_REQUESTS, NODE_COMMANDS, STREAMS } from '../subjects.js';
import { AGENT_REQUEST_EXAMPLES, cloudEventExample, COMMAND_EXAMPLES, EVENT_EXAMPLES, MEMBERSHIP_EXAMPLE, NOTIFICATION_EXAMPLE, REGISTRY_EXAMPLES, REPORT_EXAMPLES, ROLLOUT_EXAMPLES } from './examples.js';

// THE list of everything on the wire. asyncapi.yaml, schemas/*.json and the schema tests are
// generated from it: a message added here is documented and tested; one missing is neither.

export interface MessageSpec {
  /** Unique, PascalCase: the JSON Schema file and the AsyncAPI component are named after it. */
  name: string;
  schema: z.ZodType;
  example: unknown;
  /** A strict object at the top: unknown fields are refused. */
  strict?: boolean;
  description?: string;
}

export type ChannelKind = 'node-command' | 'class-command' | 'agent-report' | 'agent-request' | 'registry-rpc' | 'rollout-rpc' | 'event' | 'membership';

export interface ChannelSpec {
  /** AsyncAPI channel id. */
  id: string;
  /** The subject with `{parameter}` placeholders (see subjects.ts). */
  address: string;
  parameters: Record<string, string>;
  kind: ChannelKind;
  /** Who sends to whom. */
  direction: string;
  /** From the control plane's side (orchestrator and registry): it sends commands and events, receives reports and requests. */
  action: 'send' | 'receive';
  description: string;
  message: MessageSpec;
  /** Request/reply subjects: the reply inside `{ ok: true, result }` (errors: `{ ok: false, error: ErrorBody }`). */
  reply?: MessageSpec;
  /** JetStream stream that stores the subject, if any. */
  stream?: string;
}

/** Schemas on the wire that travel outside NATS subjects (REST bodies, webhooks): documented as JSON Schema only. */
export const STANDALONE_MESSAGES: MessageSpec[] = [
  { name: 'Notification', schema: Notification, example: NOTIFICATION_EXAMPLE, strict: true, description: 'The body of a webhook delivery and the content of Slack and e-mail notifications.' },
  {
    name: 'CreateSubscriptionRequest',
    schema: CreateSubscriptionRequest,
    example: { name: 'sre-pager', channel: { type: 'webhook', url: 'https://hooks.example/changeover', secret: 'a-long-shared-secret' }, filter: { eventTypes: ['rollout.blocked'], minSeverity: 'warning' } },
    strict: true,
    description: 'POST /subscriptions on the notifier.',
  },
];

const pascal = (s: string) => s.replace(/(^|[-._])([a-z0-9])/g, (_m, _sep: string, c: string) => c.toUpperCase());

const nodeParam = { nodeId: 'Node id, [A-Za-z0-9_-]{1,64}' };
const classParam = { classId: 'Node class id, [A-Za-z0-9_-]{1,64}' };

const COMMAND_TEXT: Record<(typeof NODE_COMMANDS)[number], string> = {
  propose: 'Evaluate an update: package identities and module dependencies (claim 1). The node answers with a vote report.',
  commit: 'The update is accepted: fetch changed modules and change over (claims 7, 8, 13, 14).',
  abort: 'Drop a pending proposal or stop a changeover that has not switched yet.',
  regress: 'Return to the previous module set or a named package version (claim 11).',
  validate: 'Every group member on the node reports its view of its group log (cluster version adjustment).',
};

const REPORT_TEXT: Record<(typeof AGENT_REPORTS)[number], string> = {
  hello: 'The agent started (or reconnected): identity, characteristics, inventory. Pending work is sent back (reconcile).',
  heartbeat: 'Periodic liveness, phase and inventory digest.',
  vote: 'One vote for a proposal with every affected process verdict (claims 5, 6).',
  progress: 'Changeover progress; completed/failed/regressed carry the inventory (claim 9).',
  inventory: 'The node inventory changed outside a rollout.',
  validated: 'Answer to a validate round: each member view of its group log.',
};

const REGISTRY_RPC: Record<keyof typeof REGISTRY_EXAMPLES, { request: z.ZodType; reply: z.ZodType; text: string }> = {
  'select-modules': { request: SelectModulesRequest, reply: SelectModulesReply, text: 'Which modules each target node gets, grouped by identical selection (claim 3).' },
  'get-packages': { request: GetPackagesRequest, reply: GetPackagesReply, text: 'Signed manifests by name@version.' },
  'publish-package': { request: PublishPackageRequest, reply: PublishPackageReply, text: 'Store a signed package and the blobs not yet uploaded.' },
  'list-packages': { request: ListPackagesRequest, reply: ListPackagesReply, text: 'Stored package versions.' },
  'list-nodes': { request: ListNodesRequest, reply: ListNodesReply, text: 'Nodes by class, label or status, paged.' },
  'provided-apis': { request: ProvidedApisRequest, reply: ProvidedApisReply, text: 'Which versions of the consumed APIs active nodes outside the given classes and nodes provide: the fleet side of a rollout inter-node check (claim 10).' },
  'enroll-node': { request: EnrollNodeRequest, reply: EnrollNodeReply, text: 'Register a node in a class; with the NATS authority configured, the reply carries the node\'s own NATS credentials (a secret, returned once).' },
  'revoke-node': { request: RevokeNodeRequest, reply: RevokeNodeReply, text: 'Revoke every NATS credential issued to a node; the servers close and refuse its connections.' },
  'import-image': { request: ImportImageRequest, reply: ImportImageReply, text: 'An update image (.tar.gz with update.json, manifests and blobs; claim 20), put in chunks into the changeover-image-uploads object store and named here.' },
  'get-class': { request: GetClassRequest, reply: ClassRecord, text: 'A node class configuration.' },
  'set-class': { request: SetClassRequest, reply: ClassRecord, text: 'Replace a node class desired packages (claim 24).' },
};

const AGENT_REQUEST_RPC: Record<(typeof AGENT_REQUESTS)[number], { request: z.ZodType; reply: z.ZodType; text: string }> = {
  'get-packages': { request: GetPackagesRequest, reply: GetPackagesReply, text: 'A node asks for signed manifests by name@version; the registry answers on the node inbox (_INBOX.node.<nodeId>).' },
  'group-append': { request: GroupAppendRequest, reply: GroupAppendReply, text: 'A confined node asks the rollout service to append its JOIN or LEAVE to a group log at the expected last sequence (VERSION_CONFLICT when the log moved); answered on the node inbox.' },
};

const ROLLOUT_TEXT: Record<keyof typeof ROLLOUT_RPC, string> = {
  create: 'Create a rollout from a software update and a policy (idempotent with a client-chosen id).',
  force: 'Force a blocked rollout: vetoing nodes accept (claim 19).',
  cancel: 'Cancel a rollout that has not completed.',
  revote: 'Ask the vetoing nodes to vote again.',
  regress: 'Return nodes to their previous modules (claim 11).',
  'adjust-cluster-version': 'Check and adjust the cluster infrastructure version of every group (second document, claims 8-10).',
};

function eventChannel(type: EventType): ChannelSpec {
  const dot = type.indexOf('.');
  const name = `${pascal(type)}Event`;
  return {
    id: `event.${type}`,
    address: `changeover.events.${type.slice(0, dot)}.${type.slice(dot + 1)}`,
    parameters: {},
    kind: 'event',
    direction: 'event store outbox → JetStream → any consumer',
    action: 'send',
    description: `Domain event ${type} as a CloudEvent (type io.changeover.${type}).`,
    message: { name, schema: CloudEvent.extend({ data: EVENT_SCHEMAS[type] }), example: cloudEventExample(type, EVENT_EXAMPLES[type]), strict: false },
    stream: STREAMS.events,
  };
}

export const CATALOG: ChannelSpec[] = [
  ...NODE_COMMANDS.map((cmd): ChannelSpec => ({
    id: `node.${cmd}`,
    address: `changeover.node.{nodeId}.${cmd}`,
    parameters: nodeParam,
    kind: 'node-command',
    direction: 'orchestrator → one node',
    action: 'send',
    description: COMMAND_TEXT[cmd],
    message: { name: `${pascal(cmd)}Command`, schema: COMMAND_SCHEMAS[cmd], example: COMMAND_EXAMPLES[cmd], strict: true },
  })),
  ...NODE_COMMANDS.map((cmd): ChannelSpec => ({
    id: `class.${cmd}`,
    address: `changeover.class.{classId}.${cmd}`,
    parameters: classParam,
    kind: 'class-command',
    direction: 'orchestrator → every node of a class',
    action: 'send',
    description: `${COMMAND_TEXT[cmd]} One message for a whole class.`,
    message: { name: `${pascal(cmd)}Command`, schema: COMMAND_SCHEMAS[cmd], example: COMMAND_EXAMPLES[cmd], strict: true },
  })),
  ...AGENT_REPORTS.map((report): ChannelSpec => ({
    id: `agent.${report}`,
    address: `changeover.agent.{nodeId}.${report}`,
    parameters: nodeParam,
    kind: 'agent-report',
    direction: 'node → orchestrator and registry',
    action: 'receive',
    description: REPORT_TEXT[report],
    message: { name: `${pascal(report)}Report`, schema: REPORT_SCHEMAS[report], example: REPORT_EXAMPLES[report], strict: true },
  })),
  ...AGENT_REQUESTS.map((op): ChannelSpec => ({
    id: `agent.${op}`,
    address: `changeover.agent.{nodeId}.${op}`,
    parameters: nodeParam,
    kind: 'agent-request',
    direction: 'node → registry (request/reply on the node inbox)',
    action: 'receive',
    description: AGENT_REQUEST_RPC[op].text,
    message: { name: `Registry${pascal(op)}Request`, schema: AGENT_REQUEST_RPC[op].request, example: AGENT_REQUEST_EXAMPLES[op].request, strict: true },
    reply: { name: `Registry${pascal(op)}Reply`, schema: AGENT_REQUEST_RPC[op].reply, example: AGENT_REQUEST_EXAMPLES[op].reply, strict: true },
  })),
  ...(Object.keys(REGISTRY_RPC) as (keyof typeof REGISTRY_RPC)[]).map((op): ChannelSpec => ({
    id: `registry.${op}`,
    address: `changeover.registry.${op}`,
    parameters: {},
    kind: 'registry-rpc',
    direction: 'any part → registry (request/reply)',
    action: 'receive',
    description: REGISTRY_RPC[op].text,
    message: { name: `Registry${pascal(op)}Request`, schema: REGISTRY_RPC[op].request, example: REGISTRY_EXAMPLES[op].request, strict: true },
    reply: { name: `Registry${pascal(op)}Reply`, schema: REGISTRY_RPC[op].reply, example: REGISTRY_EXAMPLES[op].reply, strict: true },
  })),
  ...(Object.keys(ROLLOUT_RPC) as (keyof typeof ROLLOUT_RPC)[]).map((op): ChannelSpec => ({
    id: `rollout.${op}`,
    address: `changeover.rollout.${op}`,
    parameters: {},
    kind: 'rollout-rpc',
    direction: 'CLI or other systems → rollout service (request/reply)',
    action: 'receive',
    description: ROLLOUT_TEXT[op],
    message: { name: `Rollout${pascal(op)}Request`, schema: ROLLOUT_RPC[op].request, example: ROLLOUT_EXAMPLES[op].request, strict: true },
    reply: { name: `Rollout${pascal(op)}Reply`, schema: ROLLOUT_RPC[op].reply, example: ROLLOUT_EXAMPLES[op].reply, strict: true },
  })),
  ...EVENT_TYPES.map(eventChannel),
  {
    id: 'group.membership',
    address: 'changeover.group.{groupId}.membership',
    parameters: { groupId: 'Group id, [A-Za-z0-9_-]{1,64}' },
    kind: 'membership',
    direction: 'agents and orchestrator → group members (ordered log)',
    action: 'send',
    description: 'One ordered membership log per group: JOIN, LEAVE, ADJUST_VERSION (second document, claims 3-7).',
    message: { name: 'MembershipMessage', schema: MembershipMessage, example: MEMBERSHIP_EXAMPLE, strict: true },
    stream: STREAMS.groups,
  },
];

/** Every distinct message of the catalog (class and node commands share theirs), plus the standalone ones. */
export function catalogMessages(): MessageSpec[] {
  const seen = new Map<string, MessageSpec>();
  for (const c of CATALOG) for (const m of c.reply ? [c.message, c.reply] : [c.message]) seen.set(m.name, m);
  for (const m of STANDALONE_MESSAGES) seen.set(m.name, m);
  return [...seen.values()];
}

import type { EventType } from '../events.js';

// One valid example per wire message: shown in asyncapi.yaml and used by the table-driven schema tests.

const at = '2026-11-23T09:00:00.000Z';
const digest = `sha256:${'a'.repeat(64)}`;
const digest2 = `sha256:${'b'.repeat(64)}`;
const rolloutId = 'r-2026-11-23-billing';
const nodeId = 'node-0001';
const classId = 'web';
const ref = { name: 'billing', version: '2.1.0' };
const moduleRef = { name: 'billing-core', version: '2.1.0', digest, processorType: 'x86_64', size: 1024, dependsOn: ['libcommon'] };
const selected = { name: 'billing', version: '2.1.0', modules: [moduleRef], requires: { common: '^1.0.0' }, provides: ['billing-api@2.1.0'], consumes: ['auth-api@^1'] };
const manifest = {
  name: 'billing',
  version: '2.1.0',
  description: 'Billing service',
  modules: [
    {
      name: 'billing-core',
      version: '2.1.0',
      processorType: 'x86_64',
      size: 1024,
      digest,
      dependsOn: ['libcommon'],
      requires: { os: ['linux'], minMemoryMb: 512 },
      run: { command: 'node', args: ['{module}'], healthCheck: { type: 'http', port: 8080, path: '/health' } },
    },
  ],
  requires: { common: '^1.0.0' },
  provides: ['billing-api@2.1.0'],
  consumes: ['auth-api@^1'],
};
const signature = { keyId: 'release-2026', value: 'c2lnbmF0dXJlLWJ5dGVzLWluLWJhc2U2NA==' };
const characteristics = { arch: 'x86_64', os: 'linux', memoryMb: 8192, diskMb: 100_000, labels: { zone: 'eu-1' } };
const inventory = {
  active: [{ name: 'billing', version: '2.1.0', modules: [{ name: 'billing-core', version: '2.1.0', digest }], requires: {}, provides: ['billing-api@2.1.0'], consumes: [] }],
  previous: [{ name: 'billing', version: '2.0.3', modules: [{ name: 'billing-core', version: '2.0.3', digest: digest2 }] }],
  digest,
};
const nodeRecord = { nodeId, classId, processorType: 'x86_64', characteristics, status: 'active', lastHeartbeatAt: at, agentVersion: '1.4.0', clusterVersions: { min: 1, max: 2 }, inventory };
const update = { description: 'billing 2.1.0 to the web class', targets: [{ classes: [classId], packages: [ref] }] };
const veto = { nodeId, processId: 'billing-7', module: 'billing-core', reason: 'PROCESS_BUSY', message: 'closing the books', retryAfterMs: 60_000 };
const verdictVeto = { processId: 'billing-7', module: 'billing-core', decision: 'veto', reason: 'PROCESS_BUSY', message: 'closing the books', retryAfterMs: 60_000 };
const classRecord = { classId, packages: [ref], description: 'front web tier', nodes: 12, updatedAt: at };
const uuid = '3f2b8c1e-5d4a-4b7e-9a3c-2e1f0d9c8b7a';

export const COMMAND_EXAMPLES = {
  propose: { rolloutId, attempt: 0, nodeId, packages: [selected], voteTimeoutMs: 30_000 },
  commit: { rolloutId, attempt: 0, nodeId, packages: [{ manifest, signature }], changeoverTimeoutMs: 120_000 },
  abort: { rolloutId, attempt: 0, classId, reason: 'cancelled by the operator' },
  regress: { rolloutId, attempt: 1, nodeId, to: { kind: 'version', package: 'billing', version: '2.0.3' }, reason: 'health check failed' },
  validate: { requestId: 'adj-7', groups: ['billing-group'] },
};

export const REPORT_EXAMPLES = {
  hello: { nodeId, classId, processorType: 'x86_64', characteristics, agentVersion: '1.4.0', clusterVersions: { min: 1, max: 2 }, inventory, startedAt: at },
  heartbeat: { nodeId, classId, at, agentVersion: '1.4.0', clusterVersions: { min: 1, max: 2 }, inventoryDigest: digest, phase: 'idle' },
  vote: { nodeId, rolloutId, attempt: 0, decision: 'veto', verdicts: [verdictVeto, { processId: 'agent', decision: 'accept' }], affectedProcesses: ['billing-7'] },
  progress: { nodeId, rolloutId, attempt: 0, phase: 'completed', bytesFetched: 1024, modulesFetched: 1, modulesUnchanged: 2, inventory },
  inventory: { nodeId, at, inventory },
  validated: { nodeId, requestId: 'adj-7', groups: [{ groupId: 'billing-group', memberId: 'billing-7', lastSequence: 12, activeVersion: 1, members: ['billing-7', 'billing-9'] }] },
};

export const REGISTRY_EXAMPLES = {
  'select-modules': {
    request: { packages: [ref], nodes: [nodeId], classes: [classId] },
    reply: { assignments: [{ selectionId: 'sel-1', packages: [selected], nodes: [nodeId], classId }], unsupported: [{ nodeId: 'node-0002', package: 'billing@2.1.0', processorType: 'arm64', reason: 'no arm64 module' }], unknownNodes: [] },
  },
  'get-packages': { request: { packages: [ref] }, reply: { packages: [{ manifest, signature }] } },
  'publish-package': {
    request: { package: { manifest, signature }, blobs: { [digest]: 'aGVsbG8gd29ybGQ=' } },
    reply: { package: ref, created: true, contentHash: digest2, signatureVerdict: 'valid', signedBy: 'release-2026' },
  },
  'list-packages': {
    request: { name: 'billing', limit: 10 },
    reply: { packages: [{ name: 'billing', version: '2.1.0', description: 'Billing service', contentHash: digest2, signatureVerdict: 'valid', signedBy: 'release-2026', modules: 1, createdAt: at }] },
  },
  'list-nodes': { request: { classId, status: 'active', label: 'zone=eu-1', limit: 100 }, reply: { nodes: [nodeRecord], next: null } },
  'provided-apis': { request: { consumes: ['auth-api@^1'], excludeClasses: [classId], excludeNodes: [] }, reply: { provided: ['auth-api@1.4.0'] } },
  'enroll-node': {
    request: { nodeId, classId, processorType: 'x86_64', characteristics },
    reply: { ...nodeRecord, natsCredentials: { creds: '-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.sig\n------END NATS USER JWT------\n', userPublicKey: 'UBNOVSQLDKZS3XE4VHQJ3FGYC5BV5UC4YXNVLVYTLGP6WX6JCQHTAKOG', inboxPrefix: `_INBOX.node.${nodeId}` } },
  },
  'revoke-node': { request: { nodeId }, reply: { nodeId, revokedKeys: ['UBNOVSQLDKZS3XE4VHQJ3FGYC5BV5UC4YXNVLVYTLGP6WX6JCQHTAKOG'], revocations: 1 } },
  'import-image': { request: { upload: 'image-4f1c2a9b' }, reply: { update, packages: [ref] } },
  'get-class': { request: { classId }, reply: classRecord },
  'set-class': { request: { classId, packages: [ref], description: 'front web tier', by: 'alice' }, reply: classRecord },
};

/** Requests a node makes on its own agent subject (answered by the registry on the node's inbox). */
export const AGENT_REQUEST_EXAMPLES = {
  'get-packages': REGISTRY_EXAMPLES['get-packages'],
  'group-append': { request: { message: { reason: 'JOIN', groupId: 'billing-group', memberId: 'billing-1', nodeId, at }, expectedLastSequence: 41 }, reply: { groupId: 'billing-group', sequence: 42 } },
};

export const ROLLOUT_EXAMPLES = {
  create: {
    request: { update, policy: { vote: { mode: 'atomic' }, voteTimeoutMs: 30_000, unreachable: 'veto', waves: { canary: 1, size: '25%', successThreshold: 1 }, errorThreshold: 0.1, onErrorThreshold: 'pause' }, rolloutId },
    reply: { rolloutId, status: 'voting', version: 2 },
  },
  force: { request: { rolloutId, reason: 'month-end is over', nodes: [nodeId] }, reply: { rolloutId, status: 'applying', version: 7 } },
  cancel: { request: { rolloutId, reason: 'wrong package' }, reply: { rolloutId, status: 'cancelled', version: 5 } },
  revote: { request: { rolloutId, reason: 'retry after month-end' }, reply: { rolloutId, status: 'voting', version: 6 } },
  regress: { request: { rolloutId, nodes: [nodeId], to: { kind: 'previous' }, reason: 'latency up' }, reply: { rolloutId, status: 'applying', version: 12 } },
  'adjust-cluster-version': {
    request: { version: 2, dryRun: true },
    reply: { version: 2, dryRun: true, accepted: false, adjustmentId: null, groups: 3, blockers: [{ code: 'NODE_INCAPABLE', nodeId, range: { min: 1, max: 1 }, message: 'node-0001 runs cluster versions 1..1' }] },
  },
};

export const MEMBERSHIP_EXAMPLE = { reason: 'ADJUST_VERSION', groupId: 'billing-group', version: 2, adjustmentId: 'adj-7', at };

export const NOTIFICATION_EXAMPLE = {
  id: uuid,
  eventId: '01JD2X3Y4Z5A6B7C8D9E0F1G2H',
  eventType: 'rollout.blocked',
  severity: 'warning',
  title: 'Rollout r-2026-11-23-billing blocked by a veto',
  text: 'node-0001 / billing-7 vetoed (PROCESS_BUSY): closing the books',
  links: [{ rel: 'rollout', href: 'https://changeover.example/rollouts/r-2026-11-23-billing', title: 'rollout' }],
  subscriptionId: uuid,
  rolloutId,
  at,
};

const assignment = { selectionId: 'sel-1', packages: [selected], nodes: [nodeId], classId };
const discrepancy = { kind: 'API_UNPROVIDED', nodeId, package: 'billing', missing: 'auth-api@^1', message: 'no active node in scope provides auth-api@^1' };

export const EVENT_EXAMPLES: Record<EventType, Record<string, unknown>> = {
  'rollout.created': { rolloutId, update, policy: { vote: { mode: 'atomic' }, voteTimeoutMs: 30_000, changeoverTimeoutMs: 120_000, unreachable: 'veto', waves: { canary: 1, size: '100%', successThreshold: 1 }, errorThreshold: 0, onErrorThreshold: 'pause' }, assignments: [assignment], unsupported: [], createdBy: 'alice', at },
  'rollout.nodes-added': { rolloutId, selection: 0, nodes: [nodeId], at },
  'rollout.proposed': { rolloutId, attempt: 0, nodes: 12, dryRun: false, at },
  'rollout.votes-recorded': { rolloutId, attempt: 0, votes: [{ nodeId, decision: 'veto', verdicts: [verdictVeto] }, { nodeId: 'node-0002', decision: 'accept', verdicts: [] }], at },
  'rollout.node-unreachable': { rolloutId, attempt: 0, nodeIds: ['node-0003'], treatedAs: 'veto', at },
  'rollout.blocked': { rolloutId, attempt: 0, vetoes: [veto], vetoCount: 1, vetoingNodes: 1, at },
  'rollout.forced': { rolloutId, by: 'alice', reason: 'month-end is over', nodes: [nodeId], at },
  'rollout.revote-requested': { rolloutId, by: 'alice', reason: 'retry', attempt: 1, at },
  'rollout.nodes-excluded': { rolloutId, attempt: 1, nodeIds: [nodeId], at },
  'rollout.accepted': { rolloutId, attempt: 1, nodes: 12, excluded: 1, at },
  'rollout.wave-started': { rolloutId, wave: 0, nodes: [nodeId], part: 0, parts: 1, at },
  'rollout.node-progressed': { rolloutId, nodeId, phase: 'fetching', bytesFetched: 512, at },
  'rollout.nodes-completed': { rolloutId, nodes: [{ nodeId, inventory: 0, bytesFetched: 1024 }], inventories: [inventory], at },
  'rollout.node-failed': { rolloutId, nodeId, code: 'HEALTH_CHECK_FAILED', message: 'GET /health answered 503', at },
  'rollout.paused': { rolloutId, reason: 'error threshold crossed', failed: 2, committed: 10, at },
  'rollout.resumed': { rolloutId, by: 'alice', at },
  'rollout.nodes-retried': { rolloutId, by: 'alice', reason: 'disk freed on the node', attempt: 1, nodeIds: [nodeId], at },
  'rollout.window-wait': { rolloutId, until: '2026-11-24T01:00:00.000Z', classes: [classId], at },
  'rollout.aborted': { rolloutId, reason: 'error threshold crossed', at },
  'rollout.cancelled': { rolloutId, by: 'alice', reason: 'wrong package', at },
  'rollout.regress-requested': { rolloutId, by: 'alice', nodes: [nodeId], to: 'previous', reason: 'latency up', at },
  'rollout.node-regressed': { rolloutId, nodeId, at },
  'rollout.dependency-discrepancy': { rolloutId, discrepancy, at },
  'rollout.verified': { rolloutId, nodes: 12, discrepancies: 1, at },
  'rollout.completed': { rolloutId, nodes: 12, failed: 0, at },
  'rollout.failed': { rolloutId, reason: 'every node regressed', at },
  'package.published': { package: ref, digests: [digest], signedBy: 'release-2026', signatureVerdict: 'valid', at },
  'package.pruned': { package: { name: 'billing', version: '1.0.0' }, at },
  'node.enrolled': { nodeId, classId, processorType: 'x86_64', characteristics, at },
  'node.went-stale': { nodeId, lastHeartbeatAt: at, at },
  'node.became-active': { nodeId, at },
  'node.inventories-changed': { nodes: [{ nodeId, inventory: 0 }], inventories: [{ inventoryDigest: digest, packages: ['billing@2.1.0'] }], at },
  'node.decommissioned': { nodeId, by: 'alice', at },
  'class.configuration-changed': { classId, packages: [ref], by: 'alice', at },
  'cluster-version.adjust-requested': { adjustmentId: 'adj-7', version: 2, by: 'alice', groups: ['billing-group'], reason: 'leader election for billing', at },
  'cluster-version.adjust-refused': { version: 2, by: 'alice', blockers: [{ code: 'GROUP_PARTITIONED', groupId: 'billing-group', members: ['billing-7'], message: 'billing-7 sees sequence 11, others 12' }], at },
  'cluster-version.member-acknowledged': { adjustmentId: 'adj-7', groupId: 'billing-group', memberId: 'billing-7', at },
  'cluster-version.adjusted': { adjustmentId: 'adj-7', version: 2, groups: 3, at },
  'agent.upgraded': { nodeId, from: '1.4.0', to: '1.5.0', at },
};

/** A CloudEvent around an event example, as the outbox relay publishes it. */
export function cloudEventExample(type: EventType, data: unknown) {
  return {
    specversion: '1.0',
    id: '01JD2X3Y4Z5A6B7C8D9E0F1G2H',
    source: 'changeover/rollout',
    type: `io.changeover.${type}`,
    subject: rolloutId,
    time: at,
    datacontenttype: 'application/json',
    changeoversequence: 42,
    changeoverstream: `rollout-${rolloutId}`,
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    data,
  };
}

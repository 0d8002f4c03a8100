import { CLUSTER_RECORD, ChangeoverError, MODULE_BUCKET, STREAMS, assertId, subjects } from '@changeover/contracts';

/** What one NATS user may publish and subscribe to; the shape of a user JWT's permission claims. */
export interface SubjectPermissions {
  pub: { allow: string[]; deny: string[] };
  sub: { allow: string[]; deny: string[] };
  /** Allows answering requests: publishing once to the reply subject of a received message, within ttl. */
  resp?: { max: number; ttlMs: number };
}

/** Bucket names become subject tokens and stream names: the same alphabet as ids, no dots. */
const BUCKET_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** Replies to a node's requests arrive under this prefix; the node's connection must use it as `inboxPrefix`. */
export function nodeInboxPrefix(nodeId: string): string {
  // "node" is never a 22-character nuid, so this cannot overlap the default `_INBOX.<nuid>` of services.
  return `_INBOX.node.${assertId('node', nodeId)}`;
}

/**
 * How a node reads the module store. `message-get` (default): only the direct message-get API,
 * read with `readObject`. `consumer`: what the nats.js object store reader needs (`Objm.get`),
 * which includes creating consumers — and a push consumer delivers to whatever subject its
 * creator names, so the node could make the server republish stored chunks onto another node's
 * subjects. Prefer `message-get`.
 */
export type ModuleReads = 'message-get' | 'consumer';

/**
 * Read-only access to one object store: the JetStream API calls a reader makes and nothing that
 * writes, purges or deletes. Publishing to the store's own subjects is denied outright.
 * (Sets found by test against nats-server 2.9.10: see object-store.int.spec.ts.)
 */
export function objectStoreReadPermissions(bucket: string = MODULE_BUCKET, reads: ModuleReads = 'message-get'): { pubAllow: string[]; pubDeny: string[] } {
  if (!BUCKET_PATTERN.test(bucket)) throw new ChangeoverError('INVALID_ID', `bucket ${JSON.stringify(bucket.slice(0, 80))} is not subject-safe`, { kind: 'bucket' });
  const stream = `OBJ_${bucket}`;
  const pubDeny = [`$O.${bucket}.>`];
  if (reads === 'message-get') return { pubAllow: [`$JS.API.STREAM.MSG.GET.${stream}`], pubDeny };
  if (reads !== 'consumer') throw new ChangeoverError('VALIDATION_FAILED', `unknown module read mode ${JSON.stringify(String(reads).slice(0, 40))}`);
  return {
    pubAllow: [
      // jetstreamManager() checks the account; Objm.open() reads the stream info.
      '$JS.API.INFO',
      `$JS.API.STREAM.INFO.${stream}`,
      // The metadata: last message per subject.
      `$JS.API.STREAM.MSG.GET.${stream}`,
      // The chunks: an ordered push consumer, created with the name-and-filter form of the API.
      `$JS.API.CONSUMER.CREATE.${stream}.>`,
    ],
    pubDeny,
  };
}

/**
 * What the agent reads of the group logs at start-up (DESIGN §6): the JetStream account info, the
 * info of CHANGEOVER_GROUPS and of the cluster record stream, and their messages by message-get.
 * Never stream creation, consumers or appends: a node that may create a consumer can make the
 * server deliver stored messages onto any subject, and one that may append to a group log could
 * plant any payload there. Joining a group from a confined node needs a mediated append.
 */
export function groupLogReadPermissions(): string[] {
  return [
    '$JS.API.INFO',
    `$JS.API.STREAM.INFO.${STREAMS.groups}`,
    `$JS.API.STREAM.MSG.GET.${STREAMS.groups}`,
    `$JS.API.STREAM.INFO.${CLUSTER_RECORD.stream}`,
    `$JS.API.STREAM.MSG.GET.${CLUSTER_RECORD.stream}`,
  ];
}

/** One reply per message received, within two minutes: answers to commands and JetStream flow-control replies. */
const NODE_RESPONSES = { max: 1, ttlMs: 120_000 } as const;

/**
 * A node's confinement (DESIGN §4, §10): it publishes only its own reports and requests
 * (`changeover.agent.<node>.>`, e.g. get-packages answered by the registry on its inbox), hears
 * only its own node and class commands and its own replies, reads (never writes) the module store,
 * and reads the group logs.
 */
export function nodePermissions(nodeId: string, classId: string, opts: { bucket?: string; moduleReads?: ModuleReads } = {}): SubjectPermissions {
  const store = objectStoreReadPermissions(opts.bucket ?? MODULE_BUCKET, opts.moduleReads ?? 'message-get');
  return {
    pub: { allow: [...new Set([subjects.agentAll(nodeId), ...store.pubAllow, ...groupLogReadPermissions()])], deny: store.pubDeny },
    sub: { allow: [subjects.nodeAll(nodeId), subjects.classAll(classId), `${nodeInboxPrefix(nodeId)}.>`], deny: [] },
    resp: { ...NODE_RESPONSES },
  };
}

/** Services that may hold credentials; each gets its own user so it can be revoked alone. */
export const SERVICES = ['registry', 'rollout', 'notifier', 'relay', 'cli'] as const;
export type ServiceName = (typeof SERVICES)[number];

/** Asserts a known service name; anything else is INVALID_ID. */
export function assertService(service: unknown): ServiceName {
  if (typeof service === 'string' && (SERVICES as readonly string[]).includes(service)) return service as ServiceName;
  const shown = typeof service === 'string' ? JSON.stringify(service.slice(0, 80)) : typeof service;
  throw new ChangeoverError('INVALID_ID', `service ${shown} is not one of ${SERVICES.join(', ')}`, { kind: 'service' });
}


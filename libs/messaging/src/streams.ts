import { ChangeoverError } from '@changeover/contracts';
import { JetStreamApiError, StorageType, type JetStreamManager, type StreamConfig, type StreamInfo } from '@nats-io/jetstream';

const STREAM_NOT_FOUND = 10059;
const WRONG_LAST_SEQUENCE = 10071;

/** True when JetStream answered that the stream does not exist. */
export function isStreamNotFound(e: unknown): boolean {
  return e instanceof JetStreamApiError && e.code === STREAM_NOT_FOUND;
}

/** True when an append with an expected last sequence lost the race: another message reached the subject first. */
export function isWrongLastSequence(e: unknown): boolean {
  return (e instanceof JetStreamApiError && e.code === WRONG_LAST_SEQUENCE) || /wrong last sequence/i.test(e instanceof Error ? e.message : String(e));
}

export interface StreamSpec {
  name: string;
  subjects: string[];
  /** Keep only this many messages per subject (a record stream); unlimited when absent. */
  maxMsgsPerSubject?: number;
  /** NATS_STREAM_REPLICAS (default 1): an existing stream with other replicas is moved to this many. */
  replicas?: number;
}

const reason = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * Moves an existing stream (or the stream under a KV bucket / object store) to `replicas`. The
 * server refusing (too few servers, a cluster without a leader) fails start-up with CONFLICT
 * naming the stream and both values, rather than running on fewer copies than configured.
 */
export async function reconcileReplicas(jsm: JetStreamManager, info: StreamInfo, replicas: number): Promise<StreamInfo> {
  const current = info.config.num_replicas || 1;
  // A server outside a cluster accepts and reports any count on update yet keeps one copy: only a
  // stream with cluster information really has its replicas.
  const clustered = (i: StreamInfo) => replicas === 1 || Boolean(i.cluster?.name);
  const refused = (why: string) =>
    new ChangeoverError('CONFLICT', `stream ${info.config.name} has ${current} replica(s), NATS_STREAM_REPLICAS is ${replicas}, and the server refused the change: ${why}`, {
      stream: info.config.name,
      currentReplicas: current,
      configuredReplicas: replicas,
    });
  if (!clustered(info)) throw refused('the server is not part of a cluster');
  if (current === replicas) return info;
  let updated: StreamInfo;
  try {
    updated = await jsm.streams.update(info.config.name, { ...info.config, num_replicas: replicas });
  } catch (e) {
    throw refused(reason(e));
  }
  if ((updated.config.num_replicas || 1) !== replicas) throw refused(`it kept ${updated.config.num_replicas || 1} replica(s)`);
  return updated;
}

/**
 * Creates a JetStream stream (file storage, `replicas` copies) if it is missing, or moves an existing
 * one to `replicas`; another process creating it at the same moment is fine.
 */
export async function ensureStreamConfig(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }, replicas = 1): Promise<StreamInfo> {
  try {
    return await reconcileReplicas(jsm, await jsm.streams.info(config.name), replicas);
  } catch (e) {
    if (!isStreamNotFound(e)) throw e;
  }
  let created: StreamInfo;
  try {
    created = await jsm.streams.add({ storage: StorageType.File, ...config, num_replicas: replicas });
  } catch (e) {
    // Lost the race to another creator: the stream exists now (and is reconciled), or the creation error stands.
    const existing = await jsm.streams.info(config.name).catch(() => null);
    if (existing) return reconcileReplicas(jsm, existing, replicas);
    throw new ChangeoverError('UNAVAILABLE', `stream ${config.name} with ${replicas} replica(s) could not be created: ${reason(e)}`, { stream: config.name, configuredReplicas: replicas });
  }
  return reconcileReplicas(jsm, created, replicas);
}

/** Creates a JetStream stream (file storage) if it is missing, with the spec's replicas. */
export async function ensureStream(jsm: JetStreamManager, spec: StreamSpec): Promise<void> {
  await ensureStreamConfig(jsm, { name: spec.name, subjects: spec.subjects, ...(spec.maxMsgsPerSubject ? { max_msgs_per_subject: spec.maxMsgsPerSubject } : {}) }, spec.replicas ?? 1);
}

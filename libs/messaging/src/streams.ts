import { JetStreamApiError, StorageType, type JetStreamManager } from '@nats-io/jetstream';

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
}

/** Creates a JetStream stream (file storage) if it is missing; another process creating it at the same moment is fine. */
export async function ensureStream(jsm: JetStreamManager, spec: StreamSpec): Promise<void> {
  try {
    await jsm.streams.info(spec.name);
    return;
  } catch (e) {
    if (!isStreamNotFound(e)) throw e;
  }
  try {
    await jsm.streams.add({ name: spec.name, subjects: spec.subjects, storage: StorageType.File, ...(spec.maxMsgsPerSubject ? { max_msgs_per_subject: spec.maxMsgsPerSubject } : {}) });
  } catch (e) {
    // Lost the race to another creator: the stream exists now, or the first error stands.
    await jsm.streams.info(spec.name).catch(() => {
      throw e;
    });
  }
}

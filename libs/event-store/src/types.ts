/** Metadata carried with every event: trace context, who caused it, correlation. */
export interface EventMetadata {
  traceparent?: string;
  tracestate?: string;
  /** Who caused the event (token name or `system`): the audit trail. */
  actor?: string;
  correlationId?: string;
  /** CloudEvents `subject` override (defaults to data.rolloutId or the stream id). */
  subject?: string;
  [key: string]: unknown;
}

export interface NewEvent<T extends string = string, D = unknown> {
  type: T;
  data: D;
  metadata?: EventMetadata;
  /** Defaults to a fresh UUID; give one to make a retried append recognisable. */
  id?: string;
}

export interface StoredEvent<T extends string = string, D = unknown> {
  id: string;
  streamId: string;
  /** 1-based position within the stream. */
  streamPosition: number;
  /** Position in the whole store; commits can become visible out of order (see readAll). */
  globalPosition: bigint;
  type: T;
  data: D;
  metadata: EventMetadata;
  createdAt: Date;
}

/**
 * What the caller believes the stream's last position is:
 * a number (0 = the stream must not exist yet), 'no-stream', 'stream-exists', or 'any'.
 */
export type ExpectedVersion = number | 'no-stream' | 'stream-exists' | 'any';

export interface AppendResult {
  /** The stream position of the last appended event: pass it as the next expectedVersion. */
  nextExpectedVersion: number;
  globalPositions: bigint[];
}

/** Group commit: concurrent appends are coalesced into one transaction of at most `maxBatch` appends. */
export interface GroupCommitOptions {
  /** Most appends in one transaction (default 1000). */
  maxBatch: number;
  /** How long an append may wait for company when the store is idle (default 2 ms). */
  maxWaitMs: number;
  /** Batches in flight at once, never two touching the same stream (default 2): Postgres works on one while the next is built. */
  concurrency?: number;
}

export interface ConnectOptions {
  /** postgres://… connection string. */
  url: string;
  groupCommit?: Partial<GroupCommitOptions>;
  /** Connections in the pool (default 4): many services share one Postgres. */
  poolSize?: number;
  /** Run the event-store migrations before returning (default false). */
  migrate?: boolean;
}

export interface ReadStreamOptions {
  /** Return events with streamPosition > after (default 0: from the start). */
  after?: number;
  /** At most this many events (default: all). */
  limit?: number;
}

/** Handles one batch of events in global order; the checkpoint advances only after it resolves. */
export type SubscriptionHandler = (events: StoredEvent[]) => Promise<void> | void;

export interface SubscribeOptions {
  /** Events per readAll and per handler call (default 500). */
  batchSize?: number;
  /** Fallback poll when no notification arrives (default 1000 ms). */
  pollMs?: number;
  /** Called when the handler or a read fails; the batch is retried after `retryMs` (default: logs to stderr). */
  onError?: (error: unknown) => void;
  /** Wait before retrying a failed batch (default 500 ms). */
  retryMs?: number;
  /**
   * Only one process at a time runs this subscription (a Postgres advisory lock on a connection of
   * its own); the others stand by, keep position() and lag() current from the stored checkpoint,
   * and take over when the holder stops or dies (default false).
   */
  exclusive?: boolean;
}

export interface Subscription {
  readonly name: string;
  /** Last processed global position (0n before the first batch). */
  position(): bigint;
  /** Last appended global position known to this reader minus its checkpoint. */
  lag(): number;
  /** Resolves once the reader has processed everything up to `position`. */
  caughtUpTo(position: bigint, timeoutMs?: number): Promise<void>;
  /** Stops after the batch in progress; its checkpoint is stored. */
  stop(): Promise<void>;
}

/** Counters since connect, for the service's metrics (events appended, conflicts, rejected input). */
export interface EventStoreStats {
  appends: number;
  eventsAppended: number;
  batches: number;
  versionConflicts: number;
  invalidInputs: number;
  failedAppends: number;
}

/** A caller's connection with an open transaction (BEGIN issued), on the store's database. */
export type TransactionClient = import('pg').PoolClient | import('pg').Client;

/** One stream's append inside a caller's transaction. */
export interface TransactionAppend {
  streamId: string;
  expectedVersion: ExpectedVersion;
  events: NewEvent[];
}

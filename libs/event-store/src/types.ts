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

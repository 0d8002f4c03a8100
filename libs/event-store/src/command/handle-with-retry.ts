import { ChangeoverError, isChangeoverError } from '@changeover/contracts';
import type { AppendResult, EventMetadata, ExpectedVersion, NewEvent, ReadStreamOptions, StoredEvent } from '../types.js';
import { assertStreamId, optionalInt } from '../validation/input.validate.js';

/** What a command handler needs of the store (an EventStore, or a fake in tests). */
export interface CommandStore {
  readStream(streamId: string, options?: ReadStreamOptions): Promise<StoredEvent[]>;
  append(streamId: string, expectedVersion: ExpectedVersion, events: NewEvent[]): Promise<AppendResult>;
}

export interface EventLike {
  type: string;
  data: unknown;
  metadata?: EventMetadata;
  id?: string;
}

/** How a stream's events fold into state: the decider's initialState and evolve. */
export interface StreamFold<S, E extends EventLike> {
  initialState(): S;
  evolve(state: S, event: E): S;
}

export interface HandleOptions {
  /** Re-reads and re-decides after a VERSION_CONFLICT at most this often (default 3). */
  maxRetries?: number;
  /** Merged into every new event's metadata (traceparent, actor, correlationId). */
  metadata?: EventMetadata;
}

export interface HandleResult<S, E extends EventLike> {
  /** State after the new events. */
  state: S;
  newEvents: E[];
  /** The stream's version after the command (unchanged when the decision was no events). */
  nextExpectedVersion: number;
  globalPositions: bigint[];
  /** How many conflicts were retried. */
  retries: number;
}

/**
 * Runs one command against a stream: read → fold → decide → append with the version read;
 * on a version conflict it starts over, at most `maxRetries` times, then throws the conflict.
 */
export async function handleWithRetry<S, E extends EventLike>(
  store: CommandStore,
  streamId: string,
  fold: StreamFold<S, E>,
  decide: (state: S) => E[] | Promise<E[]>,
  options: HandleOptions = {},
): Promise<HandleResult<S, E>> {
  assertStreamId(streamId);
  if (typeof fold?.initialState !== 'function' || typeof fold.evolve !== 'function') {
    throw new ChangeoverError('VALIDATION_FAILED', 'fold: must have initialState() and evolve()', { field: 'fold' });
  }
  if (typeof decide !== 'function') throw new ChangeoverError('VALIDATION_FAILED', 'decide: must be a function', { field: 'decide' });
  const maxRetries = optionalInt(options.maxRetries, 'maxRetries', 3, 0, 100);
  for (let retries = 0; ; retries++) {
    const stored = await store.readStream(streamId);
    // Events in our own stream were validated on the way in; the fold gives them their type.
    const state = stored.reduce((s, e) => fold.evolve(s, e as unknown as E), fold.initialState());
    const version = stored.length === 0 ? 0 : stored[stored.length - 1]!.streamPosition;
    const newEvents = await decide(state);
    if (!Array.isArray(newEvents)) throw new ChangeoverError('VALIDATION_FAILED', 'decide: must return an array of events', { field: 'decide' });
    if (newEvents.length === 0) return { state, newEvents, nextExpectedVersion: version, globalPositions: [], retries };
    const toAppend = options.metadata ? newEvents.map((e) => ({ ...e, metadata: { ...options.metadata, ...e.metadata } })) : newEvents;
    try {
      const result = await store.append(streamId, version, toAppend);
      return { state: newEvents.reduce(fold.evolve, state), newEvents, nextExpectedVersion: result.nextExpectedVersion, globalPositions: result.globalPositions, retries };
    } catch (e) {
      if (!isChangeoverError(e, 'VERSION_CONFLICT') || retries >= maxRetries) throw e;
    }
  }
}

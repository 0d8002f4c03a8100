import { describe, expect, it } from '@jest/globals';
import { ChangeoverError, isChangeoverError } from '@changeover/contracts';
import type { AppendResult, ExpectedVersion, NewEvent, StoredEvent } from '../types.js';
import { handleWithRetry, type CommandStore, type StreamFold } from './handle-with-retry.js';

/** An in-memory stream with an optional rival that appends just before our append, `rivalTurns` times. */
class FakeStore implements CommandStore {
  events: StoredEvent[] = [];
  appends = 0;
  constructor(private rivalTurns = 0) {}

  async readStream(): Promise<StoredEvent[]> {
    return [...this.events];
  }

  async append(streamId: string, expected: ExpectedVersion, events: NewEvent[]): Promise<AppendResult> {
    if (this.rivalTurns > 0) {
      this.rivalTurns--;
      this.push(streamId, { type: 'counter.added', data: { by: 100 } });
    }
    this.appends++;
    if (expected !== this.events.length) throw new ChangeoverError('VERSION_CONFLICT', 'conflict', { streamId, expected, actual: this.events.length });
    const positions = events.map((e) => this.push(streamId, e));
    return { nextExpectedVersion: this.events.length, globalPositions: positions };
  }

  private push(streamId: string, e: NewEvent): bigint {
    const n = this.events.length + 1;
    this.events.push({ id: `e${n}`, streamId, streamPosition: n, globalPosition: BigInt(n), type: e.type, data: e.data, metadata: e.metadata ?? {}, createdAt: new Date(0) });
    return BigInt(n);
  }
}

type CounterEvent = { type: 'counter.added'; data: { by: number }; metadata?: Record<string, unknown> };
const counter: StreamFold<number, CounterEvent> = { initialState: () => 0, evolve: (n, e) => n + e.data.by };
const addOne = (n: number): CounterEvent[] => (n >= 1000 ? [] : [{ type: 'counter.added', data: { by: 1 } }]);

describe('handleWithRetry', () => {
  it('given no events, when a command decides, then its events are appended with the version read', async () => {
    const store = new FakeStore();
    const result = await handleWithRetry(store, 'counter-1', counter, addOne, { metadata: { actor: 'ops' } });
    expect(result).toMatchObject({ state: 1, nextExpectedVersion: 1, retries: 0 });
    expect(store.events[0]!.metadata).toEqual({ actor: 'ops' });
  });

  it('re-reads, re-decides and succeeds after a conflict with a rival writer', async () => {
    const store = new FakeStore(2);
    const result = await handleWithRetry(store, 'counter-1', counter, addOne, { maxRetries: 3 });
    expect(result).toMatchObject({ state: 201, nextExpectedVersion: 3, retries: 2 });
  });

  it('gives up after maxRetries and throws the typed conflict', async () => {
    const store = new FakeStore(5);
    const error = await handleWithRetry(store, 'counter-1', counter, addOne, { maxRetries: 1 }).catch((e: unknown) => e);
    expect(isChangeoverError(error, 'VERSION_CONFLICT')).toBe(true);
    expect(store.appends).toBe(2);
  });

  it('appends nothing when the decision is no events', async () => {
    const store = new FakeStore();
    store.events.push({ id: 'x', streamId: 's', streamPosition: 1, globalPosition: 1n, type: 'counter.added', data: { by: 1000 }, metadata: {}, createdAt: new Date(0) });
    expect(await handleWithRetry(store, 's', counter, addOne)).toMatchObject({ state: 1000, newEvents: [], nextExpectedVersion: 1 });
    expect(store.appends).toBe(0);
  });

  it('passes a domain error from decide through untouched', async () => {
    const refuse = () => {
      throw new ChangeoverError('INVALID_STATE', 'no');
    };
    await expect(handleWithRetry(new FakeStore(), 's', counter, refuse)).rejects.toMatchObject({ code: 'INVALID_STATE' });
  });

  it('rejects bad input with typed errors', async () => {
    const store = new FakeStore();
    await expect(handleWithRetry(store, '', counter, addOne)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(handleWithRetry(store, 's', {} as never, addOne)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(handleWithRetry(store, 's', counter, addOne, { maxRetries: -1 })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(handleWithRetry(store, 's', counter, (() => 'x') as never)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
  });
});

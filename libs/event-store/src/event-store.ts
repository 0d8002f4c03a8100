import { ChangeoverError, isChangeoverError } from '@changeover/contracts';
import pg from 'pg';
import { flushAppendBatch } from './append/append-batch.js';
import { appendInOpenTransaction, assertClient } from './append/append-in-transaction.js';
import { isConnectionError, pgCode } from './append/append-errors.js';
import { StreamVersionCache } from './append/stream-versions.js';
import type { AppendRequest } from './append/append-plan.js';
import { DEFAULT_GROUP_COMMIT, GroupCommitQueue } from './append/group-commit.js';
import { headPosition, readAllRows, readStreamRows } from './read/read.sql.js';
import { migrate } from './schema/migrate.js';
import { loadCheckpoint, saveCheckpoint } from './subscriptions/checkpoint.sql.js';
import { advisoryLock } from './subscriptions/exclusive-lock.js';
import { CheckpointedSubscription } from './subscriptions/subscription.js';
import { WakeUp } from './subscriptions/wake-up.js';
import type {
  AppendResult,
  ConnectOptions,
  EventStoreStats,
  ExpectedVersion,
  NewEvent,
  ReadStreamOptions,
  StoredEvent,
  SubscribeOptions,
  Subscription,
  SubscriptionHandler,
  TransactionAppend,
  TransactionClient,
} from './types.js';
import { PG_CONNECT_TIMEOUT_MS } from './pg-timeouts.js';
import { parseDatabaseUrl } from './connection/database-url.js';
import { pgConnection } from './connection/failover-client.js';
import { survivesRestarts } from './pg-pool.js';
import {
  assertExpectedVersion,
  assertLimit,
  assertPosition,
  assertStreamId,
  assertSubscriptionName,
  optionalInt,
  prepareEvents,
} from './validation/input.validate.js';

const DEFAULT_POOL_SIZE = 4;

/** A read's Postgres failure as a typed error (UNAVAILABLE when the connection or pool is gone). */
async function typedRead<T>(what: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (e) {
    if (e instanceof ChangeoverError) throw e;
    const code = pgCode(e);
    const message = `${what} failed: ${e instanceof Error ? e.message : String(e)}`;
    if (isConnectionError(e)) throw new ChangeoverError('UNAVAILABLE', message);
    throw new ChangeoverError('INTERNAL', message, { pgCode: code });
  }
}

function assertUrl(url: unknown): string {
  parseDatabaseUrl(url, 'url');
  return url as string;
}

/** Append-only events in Postgres: expected-version appends with group commit, ordered reads, checkpointed subscriptions. */
export class EventStore {
  private readonly appends: GroupCommitQueue<AppendRequest, AppendResult>;
  private readonly versions = new StreamVersionCache();
  private readonly wakeUp: WakeUp;
  private readonly subscriptions = new Map<string, CheckpointedSubscription>();
  private closing: Promise<void> | undefined;
  private readonly counters: EventStoreStats = { appends: 0, eventsAppended: 0, batches: 0, versionConflicts: 0, invalidInputs: 0, failedAppends: 0 };

  private constructor(
    /** The store's pool; plain SQL of a service's own may share it. */
    readonly pool: pg.Pool,
    private readonly url: string,
    groupCommit: { maxBatch: number; maxWaitMs: number; concurrency: number },
  ) {
    this.appends = new GroupCommitQueue(
      (batch) => {
        this.counters.batches++;
        return flushAppendBatch(pool, batch, this.versions);
      },
      groupCommit,
      (r) => r.streamId,
    );
    this.wakeUp = new WakeUp(url);
  }

  /** Opens a small pool (poolSize, default 4) and optionally migrates. */
  static async connect(options: ConnectOptions): Promise<EventStore> {
    if (typeof options !== 'object' || options === null) throw new ChangeoverError('VALIDATION_FAILED', 'options: must be an object', { field: 'options' });
    const url = assertUrl(options.url);
    const poolSize = optionalInt(options.poolSize, 'poolSize', DEFAULT_POOL_SIZE, 1, 100);
    const groupCommit = {
      maxBatch: optionalInt(options.groupCommit?.maxBatch, 'groupCommit.maxBatch', DEFAULT_GROUP_COMMIT.maxBatch, 1, 100_000),
      maxWaitMs: optionalInt(options.groupCommit?.maxWaitMs, 'groupCommit.maxWaitMs', DEFAULT_GROUP_COMMIT.maxWaitMs, 0, 60_000),
      concurrency: optionalInt(options.groupCommit?.concurrency, 'groupCommit.concurrency', DEFAULT_GROUP_COMMIT.concurrency, 1, 16),
    };
    if (options.migrate) await migrate(url);
    // A connection dropped by a Postgres restart (idle, or lent to an append) must not crash the process; the next query reconnects.
    const pool = survivesRestarts(new pg.Pool({ ...pgConnection(url), max: poolSize, idleTimeoutMillis: 30_000, connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS }));
    return new EventStore(pool, url, groupCommit);
  }

  /** Runs the event-store migrations on this store's database (idempotent). */
  async migrate(): Promise<string[]> {
    return migrate(this.url);
  }

  /**
   * Appends events to a stream if its version matches; throws VERSION_CONFLICT
   * ({streamId, expected, actual}) otherwise. Concurrent calls share one transaction.
   */
  async append(streamId: string, expectedVersion: ExpectedVersion, events: NewEvent[]): Promise<AppendResult> {
    let request: AppendRequest;
    try {
      request = { streamId: assertStreamId(streamId), expected: assertExpectedVersion(expectedVersion), events: prepareEvents(events) };
    } catch (e) {
      this.counters.invalidInputs++;
      throw e;
    }
    try {
      const result = await this.appends.submit(request);
      this.counters.appends++;
      this.counters.eventsAppended += request.events.length;
      return result;
    } catch (e) {
      if (isChangeoverError(e, 'VERSION_CONFLICT')) this.counters.versionConflicts++;
      else this.counters.failedAppends++;
      throw e;
    }
  }

  /**
   * Appends inside the caller's open transaction (same SQL as a group commit of one append), so a
   * row of the caller's and its event commit or roll back together. Throws VERSION_CONFLICT like
   * append (the transaction stays usable); `client` must be on this store's database.
   */
  async appendInTransaction(client: TransactionClient, streamId: string, expectedVersion: ExpectedVersion, events: NewEvent[]): Promise<AppendResult> {
    const [result] = await this.appendAllInTransaction(client, [{ streamId, expectedVersion, events }]);
    return result!;
  }

  /** Several streams' appends in the caller's transaction with one version read and one INSERT; all or none. */
  async appendAllInTransaction(client: TransactionClient, appends: readonly TransactionAppend[]): Promise<AppendResult[]> {
    let tx;
    let requests: AppendRequest[];
    try {
      tx = assertClient(client);
      if (!Array.isArray(appends) || appends.length === 0) throw new ChangeoverError('VALIDATION_FAILED', 'appends: must be a non-empty array', { field: 'appends' });
      requests = appends.map((a: unknown, i) => {
        if (typeof a !== 'object' || a === null) throw new ChangeoverError('VALIDATION_FAILED', `appends[${i}]: must be an object`, { field: `appends[${i}]` });
        const { streamId, expectedVersion, events } = a as Partial<TransactionAppend>;
        return { streamId: assertStreamId(streamId), expected: assertExpectedVersion(expectedVersion), events: prepareEvents(events) };
      });
    } catch (e) {
      this.counters.invalidInputs++;
      throw e;
    }
    if (this.closing) throw new ChangeoverError('UNAVAILABLE', 'the event store is closed');
    // The commit is the caller's: whatever this store cached for these streams may soon be behind.
    this.versions.forget(requests.map((r) => r.streamId));
    try {
      const results = await appendInOpenTransaction(tx, requests);
      this.counters.appends += requests.length;
      this.counters.eventsAppended += requests.reduce((n, r) => n + r.events.length, 0);
      return results;
    } catch (e) {
      if (isChangeoverError(e, 'VERSION_CONFLICT')) this.counters.versionConflicts++;
      else if (isChangeoverError(e, 'VALIDATION_FAILED')) this.counters.invalidInputs++;
      else this.counters.failedAppends++;
      throw e;
    }
  }

  /** Counters since connect: export them as metrics. */
  stats(): EventStoreStats {
    return { ...this.counters };
  }

  /** The events of one stream in stream order (committed ones only). */
  async readStream(streamId: string, options: ReadStreamOptions = {}): Promise<StoredEvent[]> {
    const id = assertStreamId(streamId);
    if (typeof options !== 'object' || options === null) throw new ChangeoverError('VALIDATION_FAILED', 'options: must be an object', { field: 'options' });
    const after = optionalInt(options.after, 'after', 0, 0, 2_147_483_647);
    const limit = options.limit === undefined ? null : assertLimit(options.limit);
    return typedRead(`read of ${id}`, () => readStreamRows(this.pool, id, after, limit));
  }

  /**
   * Up to `limit` events with globalPosition > `after`, in global order, never passing an
   * event whose transaction is still in flight (so a reader that resumes from its last position misses nothing).
   */
  async readAll(after: bigint | number, limit: number): Promise<StoredEvent[]> {
    const from = assertPosition(after, 'after');
    const count = assertLimit(limit);
    return typedRead('readAll', () => readAllRows(this.pool, from, count));
  }

  /** The highest global position appended so far (committed or not yet visible to readAll). */
  async headPosition(): Promise<bigint> {
    return typedRead('headPosition', () => headPosition(this.pool));
  }

  /** The stored checkpoint of a named subscription (0n if it never ran). */
  async checkpoint(name: string): Promise<bigint> {
    const id = assertSubscriptionName(name);
    return typedRead(`checkpoint of ${id}`, () => loadCheckpoint(this.pool, id));
  }

  /**
   * Starts a named reader that calls `handler` with batches of events in global order and stores
   * its checkpoint after each; after a restart it resumes after its last processed position.
   */
  async subscribe(name: string, handler: SubscriptionHandler, options: SubscribeOptions = {}): Promise<Subscription> {
    const id = assertSubscriptionName(name);
    if (typeof handler !== 'function') throw new ChangeoverError('VALIDATION_FAILED', 'handler: must be a function', { field: 'handler' });
    if (typeof options !== 'object' || options === null) throw new ChangeoverError('VALIDATION_FAILED', 'options: must be an object', { field: 'options' });
    if (options.onError !== undefined && typeof options.onError !== 'function') throw new ChangeoverError('VALIDATION_FAILED', 'onError: must be a function', { field: 'onError' });
    if (this.closing) throw new ChangeoverError('UNAVAILABLE', 'the event store is closed');
    if (this.subscriptions.has(id)) throw new ChangeoverError('CONFLICT', `subscription ${id} is already running in this process`, { name: id });
    const settings = {
      batchSize: optionalInt(options.batchSize, 'batchSize', 500, 1, 10_000),
      pollMs: optionalInt(options.pollMs, 'pollMs', 1000, 1, 3_600_000),
      retryMs: optionalInt(options.retryMs, 'retryMs', 500, 1, 3_600_000),
      onError: options.onError ?? ((e: unknown) => console.error(JSON.stringify({ level: 'error', msg: `subscription ${id} failed; retrying`, error: String(e) }))),
      ...(options.exclusive === true ? { exclusive: advisoryLock(this.url, id) } : {}),
    };
    if (options.exclusive !== undefined && typeof options.exclusive !== 'boolean') throw new ChangeoverError('VALIDATION_FAILED', 'exclusive: must be a boolean', { field: 'exclusive' });
    await this.wakeUp.start();
    const subscription = new CheckpointedSubscription(
      id,
      {
        readAll: (after, limit) => readAllRows(this.pool, after, limit),
        headPosition: () => headPosition(this.pool),
        loadCheckpoint: (n) => loadCheckpoint(this.pool, n),
        saveCheckpoint: (n, p) => saveCheckpoint(this.pool, n, p),
        onAppended: (l) => this.wakeUp.on(l),
      },
      handler,
      settings,
    );
    this.subscriptions.set(id, subscription);
    try {
      await subscription.start();
    } catch (e) {
      this.subscriptions.delete(id);
      throw e;
    }
    const stop = subscription.stop.bind(subscription);
    subscription.stop = async () => {
      await stop();
      this.subscriptions.delete(id);
    };
    return subscription;
  }

  /** Commits the appends already submitted, stops the subscriptions, then ends the pool. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.appends.close();
      await Promise.all([...this.subscriptions.values()].map((s) => s.stop()));
      await this.wakeUp.close();
      await this.pool.end();
    })();
    return this.closing;
  }
}

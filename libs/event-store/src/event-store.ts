import { ChangeoverError, isChangeoverError } from '@changeover/contracts';
import pg from 'pg';
import { flushAppendBatch } from './append/append-batch.js';
import { StreamVersionCache } from './append/stream-versions.js';
import type { AppendRequest } from './append/append-plan.js';
import { DEFAULT_GROUP_COMMIT, GroupCommitQueue } from './append/group-commit.js';
import { headPosition, readAllRows, readStreamRows } from './read/read.sql.js';
import { migrate } from './schema/migrate.js';
import { loadCheckpoint, saveCheckpoint } from './subscriptions/checkpoint.sql.js';
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
} from './types.js';
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

function assertUrl(url: unknown): string {
  if (typeof url === 'string' && /^postgres(ql)?:\/\/\S+$/.test(url)) return url;
  throw new ChangeoverError('VALIDATION_FAILED', 'url: must be a postgres:// connection string', { field: 'url' });
}

/** Append-only events in Postgres: expected-version appends with group commit, ordered reads, checkpointed subscriptions. */
export class EventStore {
  private readonly appends: GroupCommitQueue<AppendRequest, AppendResult>;
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
    const versions = new StreamVersionCache();
    this.appends = new GroupCommitQueue(
      (batch) => {
        this.counters.batches++;
        return flushAppendBatch(pool, batch, versions);
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
    const pool = new pg.Pool({ connectionString: url, max: poolSize, idleTimeoutMillis: 30_000 });
    // An idle connection dropped by a Postgres restart must not crash the process; the next query reconnects.
    pool.on('error', () => undefined);
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
    return readStreamRows(this.pool, id, after, limit);
  }

  /**
   * Up to `limit` events with globalPosition > `after`, in global order, never passing an
   * event whose transaction is still in flight (so a reader that resumes from its last position misses nothing).
   */
  async readAll(after: bigint | number, limit: number): Promise<StoredEvent[]> {
    return readAllRows(this.pool, assertPosition(after, 'after'), assertLimit(limit));
  }

  /** The highest global position appended so far (committed or not yet visible to readAll). */
  async headPosition(): Promise<bigint> {
    return headPosition(this.pool);
  }

  /** The stored checkpoint of a named subscription (0n if it never ran). */
  async checkpoint(name: string): Promise<bigint> {
    return loadCheckpoint(this.pool, assertSubscriptionName(name));
  }

  /**
   * Starts a named reader that calls `handler` with batches of events in global order and stores
   * its checkpoint after each; after a restart it resumes after its last processed position.
   */
  async subscribe(name: string, handler: SubscriptionHandler, options: SubscribeOptions = {}): Promise<Subscription> {
    const id = assertSubscriptionName(name);
    if (typeof handler !== 'function') throw new ChangeoverError('VALIDATION_FAILED', 'handler: must be a function', { field: 'handler' });
    if (this.closing) throw new ChangeoverError('UNAVAILABLE', 'the event store is closed');
    if (this.subscriptions.has(id)) throw new ChangeoverError('CONFLICT', `subscription ${id} is already running in this process`, { name: id });
    const settings = {
      batchSize: optionalInt(options.batchSize, 'batchSize', 500, 1, 10_000),
      pollMs: optionalInt(options.pollMs, 'pollMs', 1000, 1, 3_600_000),
      retryMs: optionalInt(options.retryMs, 'retryMs', 500, 1, 3_600_000),
      onError: options.onError ?? ((e: unknown) => console.error(JSON.stringify({ level: 'error', msg: `subscription ${id} failed; retrying`, error: String(e) }))),
    };
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

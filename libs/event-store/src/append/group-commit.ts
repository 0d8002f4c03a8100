import { ChangeoverError } from '@changeover/contracts';
import type { GroupCommitOptions } from '../types.js';

/** One caller waiting for its own result. */
export interface Pending<Req, Res> {
  readonly request: Req;
  /** True once resolved or rejected (optional for hand-made pendings). */
  readonly settled?: boolean;
  resolve(result: Res): void;
  reject(error: unknown): void;
}

/** Settles each pending of a batch itself; whatever it leaves unsettled is failed with its error. */
export type FlushBatch<Req, Res> = (batch: Pending<Req, Res>[]) => Promise<void>;

export const DEFAULT_GROUP_COMMIT: Required<GroupCommitOptions> = { maxBatch: 1000, maxWaitMs: 2, concurrency: 2 };

/**
 * Coalesces concurrent requests into batches: up to `concurrency` batches in flight, the next
 * gathering meanwhile, so the batch size follows the load and an idle store waits at most maxWaitMs.
 * Requests with the same key (stream) never sit in two batches in flight, so they keep their order.
 */
export class GroupCommitQueue<Req, Res> {
  private queue: Pending<Req, Res>[] = [];
  private running = 0;
  private readonly busyKeys = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  private readonly options: Required<GroupCommitOptions>;

  constructor(
    private readonly flushBatch: FlushBatch<Req, Res>,
    options: GroupCommitOptions = DEFAULT_GROUP_COMMIT,
    private readonly keyOf: (request: Req) => string = () => '',
  ) {
    this.options = { ...DEFAULT_GROUP_COMMIT, ...options };
  }

  /** Requests waiting for a batch (not counting those in flight). */
  get pending(): number {
    return this.queue.length;
  }

  submit(request: Req): Promise<Res> {
    if (this.closed) return Promise.reject(new ChangeoverError('UNAVAILABLE', 'the event store is closed'));
    return new Promise<Res>((resolve, reject) => {
      this.queue.push(once({ request, resolve, reject }));
      this.schedule();
    });
  }

  /** Resolves once every request submitted so far is settled. */
  drain(): Promise<void> {
    if (this.running === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Refuses new requests and waits for the submitted ones. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.fill();
    }
    await this.drain();
  }

  private schedule(): void {
    if (this.queue.length >= this.options.maxBatch && this.running < this.options.concurrency) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.fill();
      return;
    }
    if (this.running > 0) return; // a batch in flight starts the next ones when it ends
    if (!this.timer) this.timer = setTimeout(() => {
      this.timer = undefined;
      this.fill();
    }, this.options.maxWaitMs);
  }

  /** Starts batches while there is room and work whose streams are not in flight. */
  private fill(): void {
    while (this.running < this.options.concurrency && this.queue.length > 0) {
      const batch = this.take();
      if (batch.length === 0) return;
      this.running++;
      const keys = batch.map((p) => this.keyOf(p.request));
      for (const k of keys) this.busyKeys.set(k, (this.busyKeys.get(k) ?? 0) + 1);
      void this.runBatch(batch).finally(() => {
        for (const k of keys) {
          const n = this.busyKeys.get(k)! - 1;
          if (n === 0) this.busyKeys.delete(k);
          else this.busyKeys.set(k, n);
        }
        this.running--;
        if (this.queue.length > 0) this.fill(); // these waited during the last flush already
        else if (this.running === 0) this.notifyIdle();
      });
    }
  }

  /** Up to maxBatch requests in queue order, leaving those whose key is in flight (and all after them with that key). */
  private take(): Pending<Req, Res>[] {
    if (this.busyKeys.size === 0) return this.queue.splice(0, this.options.maxBatch);
    const batch: Pending<Req, Res>[] = [];
    const rest: Pending<Req, Res>[] = [];
    for (const p of this.queue) {
      if (batch.length < this.options.maxBatch && !this.busyKeys.has(this.keyOf(p.request))) batch.push(p);
      else rest.push(p);
    }
    this.queue = rest;
    return batch;
  }

  private async runBatch(batch: Pending<Req, Res>[]): Promise<void> {
    try {
      await this.flushBatch(batch);
      for (const p of batch) if (!p.settled) p.reject(new ChangeoverError('INTERNAL', 'append batch ended without a result for this append'));
    } catch (e) {
      for (const p of batch) if (!p.settled) p.reject(e);
    }
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

/** A pending whose first settlement wins, so a batch can safely settle leftovers at the end. */
function once<Req, Res>(p: Pending<Req, Res>): Pending<Req, Res> {
  let settled = false;
  return {
    request: p.request,
    get settled() {
      return settled;
    },
    resolve(r) {
      if (settled) return;
      settled = true;
      p.resolve(r);
    },
    reject(e) {
      if (settled) return;
      settled = true;
      p.reject(e);
    },
  };
}

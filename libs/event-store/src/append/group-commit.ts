import { ChangeoverError } from '@changeover/contracts';
import type { GroupCommitOptions } from '../types.js';

/** One caller waiting for its own result. */
export interface Pending<Req, Res> {
  readonly request: Req;
  resolve(result: Res): void;
  reject(error: unknown): void;
}

/** Settles each pending of a batch itself; whatever it leaves unsettled is failed with its error. */
export type FlushBatch<Req, Res> = (batch: Pending<Req, Res>[]) => Promise<void>;

export const DEFAULT_GROUP_COMMIT: GroupCommitOptions = { maxBatch: 1000, maxWaitMs: 2 };

/**
 * Coalesces concurrent requests into batches: one batch in flight at a time, the next one
 * gathering meanwhile, so the batch size follows the load and an idle store waits at most maxWaitMs.
 */
export class GroupCommitQueue<Req, Res> {
  private queue: Pending<Req, Res>[] = [];
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly flushBatch: FlushBatch<Req, Res>,
    private readonly options: GroupCommitOptions = DEFAULT_GROUP_COMMIT,
  ) {}

  /** Requests waiting for a batch (not counting the one in flight). */
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
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Refuses new requests and waits for the submitted ones. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.start();
    }
    await this.drain();
  }

  private schedule(): void {
    if (this.running) return; // the flush in flight starts the next batch when it ends
    if (this.queue.length >= this.options.maxBatch) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.start();
      return;
    }
    if (!this.timer) this.timer = setTimeout(() => {
      this.timer = undefined;
      this.start();
    }, this.options.maxWaitMs);
  }

  private start(): void {
    if (this.running || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.options.maxBatch);
    this.running = this.runBatch(batch).finally(() => {
      this.running = undefined;
      if (this.queue.length > 0) this.start(); // these waited during the last flush already
      else this.notifyIdle();
    });
  }

  private async runBatch(batch: Pending<Req, Res>[]): Promise<void> {
    try {
      await this.flushBatch(batch);
      for (const p of batch) p.reject(new ChangeoverError('INTERNAL', 'append batch ended without a result for this append'));
    } catch (e) {
      for (const p of batch) p.reject(e);
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

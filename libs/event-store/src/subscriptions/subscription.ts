import { ChangeoverError } from '@changeover/contracts';
import type { StoredEvent, Subscription, SubscriptionHandler } from '../types.js';
import type { ExclusiveLock, HeldLock } from './exclusive-lock.js';

/** What a subscription needs from the store (an interface, so the loop is testable on its own). */
export interface SubscriptionSource {
  readAll(after: bigint, limit: number): Promise<StoredEvent[]>;
  headPosition(): Promise<bigint>;
  loadCheckpoint(name: string): Promise<bigint>;
  saveCheckpoint(name: string, position: bigint): Promise<void>;
  /** Calls back with the newest global position whenever a batch commits; returns an unsubscribe. */
  onAppended(listener: (head: bigint) => void): () => void;
}

export interface SubscriptionSettings {
  batchSize: number;
  pollMs: number;
  retryMs: number;
  onError: (error: unknown) => void;
  /** When set, only the process holding this lock handles events; the others stand by. */
  exclusive?: ExclusiveLock;
}

/**
 * A named reader that handles events in global order, batch by batch, storing its checkpoint
 * after each batch; it is at-least-once, so handlers must be idempotent (events carry ids).
 */
export class CheckpointedSubscription implements Subscription {
  private checkpoint = 0n;
  private head = 0n;
  private stopped = false;
  private woken = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private unlisten: (() => void) | undefined;
  private readonly progressWaiters = new Set<() => void>();
  private held: HeldLock | undefined;

  constructor(
    readonly name: string,
    private readonly source: SubscriptionSource,
    private readonly handler: SubscriptionHandler,
    private readonly settings: SubscriptionSettings,
  ) {}

  async start(): Promise<void> {
    this.checkpoint = await this.source.loadCheckpoint(this.name);
    this.head = await this.source.headPosition();
    this.unlisten = this.source.onAppended((head) => {
      if (head > this.head) this.head = head;
      this.nudge();
    });
    this.loop = this.run();
  }

  position(): bigint {
    return this.checkpoint;
  }

  lag(): number {
    return this.head > this.checkpoint ? Number(this.head - this.checkpoint) : 0;
  }

  async caughtUpTo(position: bigint, timeoutMs = 30_000): Promise<void> {
    if (this.checkpoint >= position) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.progressWaiters.delete(check);
        reject(new ChangeoverError('TIMEOUT', `subscription ${this.name} is at ${this.checkpoint}, not ${position}, after ${timeoutMs} ms`));
      }, timeoutMs);
      const check = () => {
        if (this.checkpoint < position) return;
        clearTimeout(timer);
        this.progressWaiters.delete(check);
        resolve();
      };
      this.progressWaiters.add(check);
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unlisten?.();
    this.settings.exclusive?.cancel();
    this.nudge();
    await this.loop;
    await this.held?.release();
    this.held = undefined;
  }

  /** Whether this process handles the events now (always, unless exclusive and standing by). */
  active(): boolean {
    return !this.settings.exclusive || this.held !== undefined;
  }

  private nudge(): void {
    this.woken = true;
    this.wake?.();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      if (this.settings.exclusive && !this.held) {
        await this.standBy(this.settings.exclusive);
        continue;
      }
      let full = false;
      try {
        full = await this.step();
      } catch (e) {
        this.settings.onError(e);
        await this.pause(this.settings.retryMs);
        continue;
      }
      if (!full) await this.pause(this.settings.pollMs, true);
    }
  }

  /**
   * Waits for the lock, keeping the checkpoint (and so lag()) current from the holder's progress;
   * once held, resumes after the stored checkpoint.
   */
  private async standBy(lock: ExclusiveLock): Promise<void> {
    let outcome: { held: HeldLock } | { error: unknown } | undefined;
    const acquiring = lock.acquire().then(
      (held) => (outcome = { held }),
      (error: unknown) => (outcome = { error }),
    );
    while (!outcome && !this.stopped) {
      await Promise.race([acquiring, new Promise((r) => setTimeout(r, this.settings.pollMs).unref())]);
      if (outcome || this.stopped) break;
      // A stand-by's lag() goes stale while the store does not answer: said like any other failure, and tried again next poll.
      await this.refresh().catch((e: unknown) => this.settings.onError(e));
    }
    if (this.stopped) {
      lock.cancel();
      await acquiring;
      if (outcome && 'held' in outcome) await outcome.held.release();
      return;
    }
    if (outcome && 'error' in outcome) {
      this.settings.onError(outcome.error);
      await this.pause(this.settings.retryMs);
      return;
    }
    const held = (outcome as { held: HeldLock }).held;
    this.held = held;
    void held.lost.then(() => {
      if (this.held === held) this.held = undefined;
      this.nudge();
    });
    try {
      await this.refresh();
    } catch (e) {
      this.settings.onError(e);
    }
  }

  /** The stored checkpoint (another process may have moved it) and the head. */
  private async refresh(): Promise<void> {
    const stored = await this.source.loadCheckpoint(this.name);
    if (stored > this.checkpoint) this.checkpoint = stored;
    const head = await this.source.headPosition();
    if (head > this.head) this.head = head;
    for (const check of [...this.progressWaiters]) check();
  }

  /** Handles one batch; true when the batch was full, so more may be waiting right now. */
  private async step(): Promise<boolean> {
    const events = await this.source.readAll(this.checkpoint, this.settings.batchSize);
    if (events.length === 0) return false;
    await this.handler(events);
    const last = events[events.length - 1]!.globalPosition;
    await this.source.saveCheckpoint(this.name, last);
    this.checkpoint = last;
    if (last > this.head) this.head = last;
    for (const check of [...this.progressWaiters]) check();
    return events.length === this.settings.batchSize;
  }

  /** Sleeps until a commit notification (or `stop`) or the timeout; a poll timeout refreshes the head for lag(). */
  private async pause(ms: number, wakeable = false): Promise<void> {
    if (this.stopped || (wakeable && this.woken)) {
      this.woken = false;
      return;
    }
    const timedOut = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(true), ms);
      this.wake = () => {
        if (!wakeable && !this.stopped) return;
        clearTimeout(timer);
        resolve(false);
      };
    });
    this.wake = undefined;
    this.woken = false;
    if (timedOut && !this.stopped) {
      const head = await this.source.headPosition().catch(() => this.head);
      if (head > this.head) this.head = head;
    }
  }
}

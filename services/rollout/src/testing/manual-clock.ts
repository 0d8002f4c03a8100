import type { Timers } from '../workflow/rollout.runner.js';

/** A clock that moves only when the test says so; timers on it fire as it passes their time. */
export class ManualClock implements Timers {
  private nowMs: number;
  private readonly pending = new Set<{ at: number; fn: () => void }>();

  constructor(start: Date) {
    this.nowMs = start.getTime();
  }

  readonly now = (): Date => new Date(this.nowMs);

  at(ms: number, fn: () => void): { cancel(): void } {
    const t = { at: ms, fn };
    this.pending.add(t);
    if (ms <= this.nowMs) queueMicrotask(() => this.fire());
    return { cancel: () => this.pending.delete(t) };
  }

  /** Moves the clock forward and runs every timer now due, earliest first. */
  advance(ms: number): void {
    this.nowMs += ms;
    this.fire();
  }

  /** Moves the clock to an instant (never backwards). */
  set(to: Date): void {
    this.nowMs = Math.max(this.nowMs, to.getTime());
    this.fire();
  }

  /** Timers waiting on the clock (for a test to await the one it expects). */
  waiting(): number[] {
    return [...this.pending].map((t) => t.at).sort((a, b) => a - b);
  }

  private fire(): void {
    const due = [...this.pending].filter((t) => t.at <= this.nowMs).sort((a, b) => a.at - b.at);
    for (const t of due) {
      this.pending.delete(t);
      t.fn();
    }
  }
}

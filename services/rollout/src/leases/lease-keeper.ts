import type { Logger } from '@changeover/telemetry';
import type { LeaseStore } from './lease-store.js';
import type { RolloutRunner } from '../workflow/rollout.runner.js';

/** Renews this instance's leases, drops the ones taken over, and takes over rollouts whose owner died. */
export class LeaseKeeper {
  private timer: NodeJS.Timeout | null = null;
  private tick: Promise<void> = Promise.resolve();

  constructor(
    private readonly leases: LeaseStore,
    private readonly runner: RolloutRunner,
    private readonly leaseMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    const every = Math.max(100, Math.floor(this.leaseMs / 3));
    const run = () => {
      this.tick = this.tick.then(() => this.once()).catch((e) => this.log.warn({ err: e }, 'lease round failed'));
    };
    run();
    this.timer = setInterval(run, every);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.tick;
  }

  /** Takes a fresh rollout (the creating instance owns it first). */
  async acquire(rolloutId: string): Promise<void> {
    if (await this.leases.acquire(rolloutId)) await this.runner.adopt(rolloutId);
  }

  async once(): Promise<void> {
    const owned = this.runner.ownedIds();
    const held = await this.leases.renew(owned);
    for (const id of owned) {
      if (!held.has(id)) {
        this.log.warn({ rolloutId: id }, 'lease lost: another instance owns the rollout now');
        this.runner.drop(id);
      }
    }
    for (const id of await this.leases.expired()) {
      if (this.runner.isOwned(id)) continue;
      if (await this.leases.acquire(id)) {
        this.log.info({ rolloutId: id }, 'lease taken');
        await this.runner.adopt(id).catch((e) => this.log.error({ err: e, rolloutId: id }, 'adopting a rollout failed'));
      }
    }
  }
}

import type { NewEvent, StoredEvent } from '@changeover/event-store';
import { createLogger, type Logger } from '@changeover/telemetry';
import { RolloutRunner, type EventLog, type RunnerDeps } from '../workflow/rollout.runner.js';

/** An in-memory event log for runner unit tests: the stream survives the runner, as Postgres survives a restart. */
export function memoryLog(): EventLog & { events: StoredEvent[] } {
  const events: StoredEvent[] = [];
  return {
    events,
    async append(streamId, _expected, batch: NewEvent[]) {
      for (const e of batch) events.push({ id: String(events.length + 1), streamId, streamPosition: events.length + 1, globalPosition: BigInt(events.length + 1), type: e.type, data: e.data, metadata: e.metadata ?? {}, createdAt: new Date() });
      return { nextExpectedVersion: events.length };
    },
    async readStream(_id, options = {}) {
      const after = events.filter((e) => e.streamPosition > (options.after ?? 0));
      return options.limit === undefined ? after : after.slice(0, options.limit);
    },
  };
}

/** A runner over `store` whose node commands are recorded in `sent` (their kinds, in order). */
export function memoryRunner(store: EventLog, sent: string[], log: Logger = createLogger('rollout-test', { level: 'silent' })): RolloutRunner {
  const deps: RunnerDeps = {
    store,
    send: async (_state, action) => void sent.push(action.kind),
    leases: { release: async () => undefined, ensure: async () => undefined },
    appended: () => undefined,
    settled: async () => undefined,
    forget: () => undefined,
    // A fleet with no nodes outside the rollout.
    providedElsewhere: async () => [],
    clock: () => new Date(),
    log,
  };
  return new RolloutRunner(deps);
}

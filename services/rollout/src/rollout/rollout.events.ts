import type { EventData, EventType } from '@changeover/contracts';

/** Every event of the rollout aggregate (stream `rollout-<id>`), typed from the contracts. */
export type RolloutEventType = Extract<EventType, `rollout.${string}`>;
export type RolloutEvent = { [T in RolloutEventType]: { type: T; data: EventData<T> } }[RolloutEventType];
export type RolloutEventOf<T extends RolloutEventType> = Extract<RolloutEvent, { type: T }>;

export const rolloutStreamId = (rolloutId: string) => `rollout-${rolloutId}`;

/** Builds a typed rollout event. */
export const ev = <T extends RolloutEventType>(type: T, data: EventData<T>) => ({ type, data }) as RolloutEventOf<T>;

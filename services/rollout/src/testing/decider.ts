import { ChangeoverError } from '@changeover/contracts';
import { decide, type Decision, type RolloutCommand } from '../rollout/rollout.decider.js';
import { fold, initialState, type ActiveState, type RolloutState } from '../rollout/rollout.state.js';
import type { RolloutEvent } from '../rollout/rollout.events.js';

// Given-when-then over the rollout decider, for its unit tests: a history of commands, each decided and
// folded (a refused one throws), then the next command's decision.

export interface Given {
  state: RolloutState;
  /** Every event the history decided, in order. */
  events: RolloutEvent[];
  when: (c: RolloutCommand) => Decision;
  then: (c: RolloutCommand) => Given;
}

export function given(...history: RolloutCommand[]): Given {
  let state = initialState();
  const events: RolloutEvent[] = [];
  for (const c of history) {
    const d = decide(c, state);
    if (d instanceof ChangeoverError) throw d;
    events.push(...d);
    state = fold(d, state);
  }
  return { state, events, when: (c) => decide(c, state), then: (c) => given(...history, c) };
}

/** The state of a created rollout. */
export const active = (s: RolloutState): ActiveState => {
  if (s.status === 'initial') throw new Error('not created');
  return s;
};

/** A decision as its event types, or a refusal's code. */
export const types = (d: Decision) => (d instanceof ChangeoverError ? d.code : d.map((e) => e.type));

// After a self-upgrade the launcher keeps the new agent version on probation for
// AGENT_UPGRADE_PROBATION_MS once it is up: an exit or a failing health check then rolls it back. The
// new agent holds its completion until the launcher says the probation passed, so the rollout never
// counts a node done on an agent that is about to be rolled back.

export const PROBATION_MESSAGES = {
  /** agent → launcher: is this version on probation? */
  query: 'changeover-probation-query',
  /** launcher → agent: `{ state: 'watching', remainingMs }` now, then `{ state: 'passed' }` when it passed. */
  state: 'changeover-probation',
} as const;

/** The progress error code when the new agent version came up but failed during its probation and the launcher rolled it back. */
export const AGENT_UPGRADE_PROBATION_FAILED = 'AGENT_UPGRADE_PROBATION_FAILED';

/** Consecutive failed health polls (one each 500 ms) that fail a probation. */
export const PROBATION_HEALTH_FAILURES = 5;

interface Msg {
  kind?: string;
  state?: string;
}

/**
 * New agent: resolves once the launcher says its probation passed (at once when it keeps none, or with
 * no launcher channel). A launcher that does not answer within `answerMs` keeps no probation (an older
 * one). While watching, the launcher either passes the probation or kills this process.
 */
export function probationPassed(answerMs = 2000): Promise<'passed' | 'none'> {
  if (!process.send || !process.connected) return Promise.resolve('none');
  return new Promise((resolve) => {
    let answered = false;
    const timer = setTimeout(() => done('none'), answerMs);
    const onMessage = (m: Msg) => {
      if (m?.kind !== PROBATION_MESSAGES.state) return;
      answered = true;
      clearTimeout(timer);
      if (m.state === 'passed') done('passed');
    };
    const done = (how: 'passed' | 'none') => {
      clearTimeout(timer);
      process.off('message', onMessage);
      resolve(how);
    };
    process.on('message', onMessage);
    process.send!({ kind: PROBATION_MESSAGES.query }, undefined, {}, (e) => {
      if (e && !answered) done('none');
    });
  });
}

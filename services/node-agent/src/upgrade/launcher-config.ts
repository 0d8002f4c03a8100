/** The files the launcher and the agent it starts share in the state directory. */
export const LAUNCH_FILES = {
  /** Written by an agent once it is up (NATS connected, store loaded, processes applied): its pid. */
  ready: 'agent.ready',
  /** Written by the launcher when it rolled a new agent version back: why. Read (and removed) by the agent it starts instead. */
  rollback: 'agent-rollback.json',
} as const;

export interface RollbackNote {
  /** The module file of the agent version that did not come up. */
  failedEntry: string;
  reason: string;
  at: string;
  /** When it failed: before it was up (`start`, also when absent) or during the probation that followed (`probation`). */
  stage?: 'start' | 'probation';
}

import { ChangeoverError, type EventData, type EventType } from '@changeover/contracts';

/** Every event of the cluster aggregate (stream `cluster`), typed from the contracts. */
export type ClusterEventType = Extract<EventType, `cluster-version.${string}`>;
export type ClusterEvent = { [T in ClusterEventType]: { type: T; data: EventData<T> } }[ClusterEventType];
export type Blocker = EventData<'cluster-version.adjust-refused'>['blockers'][number];

export const CLUSTER_STREAM = 'cluster';
export const cev = <T extends ClusterEventType>(type: T, data: EventData<T>) => ({ type, data }) as Extract<ClusterEvent, { type: T }>;

export interface Adjustment {
  adjustmentId: string;
  version: number;
  by: string;
  groups: string[];
  startedAt: string;
  /** `group/member` keys acknowledged so far. */
  acked: Set<string>;
}

/** Idle (at `activeVersion`) or adjusting to a recorded target; `last` is the latest finished or refused attempt, for status. */
export type ClusterState =
  | { status: 'idle'; activeVersion: number; last: { adjustmentId: string | null; version: number; by: string; startedAt: string; finishedAt: string; outcome: 'adjusted' | 'refused'; acknowledged: number } | null }
  | { status: 'adjusting'; activeVersion: number; adjustment: Adjustment };

export const initialClusterState = (): ClusterState => ({ status: 'idle', activeVersion: 1, last: null });

export const ackKey = (groupId: string, memberId: string) => `${groupId}/${memberId}`;

export function evolve(state: ClusterState, event: ClusterEvent): ClusterState {
  switch (event.type) {
    case 'cluster-version.adjust-requested':
      return { status: 'adjusting', activeVersion: state.activeVersion, adjustment: { adjustmentId: event.data.adjustmentId, version: event.data.version, by: event.data.by, groups: event.data.groups, startedAt: event.data.at, acked: new Set() } };
    case 'cluster-version.adjust-refused': {
      const open = state.status === 'adjusting' ? state.adjustment : null;
      return { status: 'idle', activeVersion: state.activeVersion, last: { adjustmentId: open?.adjustmentId ?? null, version: event.data.version, by: event.data.by, startedAt: open?.startedAt ?? event.data.at, finishedAt: event.data.at, outcome: 'refused', acknowledged: open?.acked.size ?? 0 } };
    }
    case 'cluster-version.member-acknowledged': {
      if (state.status !== 'adjusting' || state.adjustment.adjustmentId !== event.data.adjustmentId) return state;
      const acked = new Set(state.adjustment.acked).add(ackKey(event.data.groupId, event.data.memberId));
      return { ...state, adjustment: { ...state.adjustment, acked } };
    }
    case 'cluster-version.adjusted': {
      const open = state.status === 'adjusting' ? state.adjustment : null;
      return { status: 'idle', activeVersion: event.data.version, last: { adjustmentId: event.data.adjustmentId, version: event.data.version, by: open?.by ?? 'system', startedAt: open?.startedAt ?? event.data.at, finishedAt: event.data.at, outcome: 'adjusted', acknowledged: open?.acked.size ?? 0 } };
    }
    default: {
      const never: never = event;
      return never;
    }
  }
}

export const fold = (events: ClusterEvent[]) => events.reduce(evolve, initialClusterState());

export type ClusterCommand =
  /** The checks passed: record the target (from then on incapable nodes are refused on join). */
  | { type: 'Request'; adjustmentId: string; version: number; by: string; groups: string[]; reason?: string; now: Date }
  /** The checks failed before anything was recorded. */
  | { type: 'Refuse'; version: number; by: string; blockers: Blocker[]; reason?: string; now: Date }
  /** The re-check after recording the target failed: the adjustment ends, the version stays. */
  | { type: 'Abandon'; adjustmentId: string; blockers: Blocker[]; now: Date }
  | { type: 'Acknowledge'; adjustmentId: string; members: { groupId: string; memberId: string }[]; now: Date }
  | { type: 'Complete'; adjustmentId: string; groups: number; now: Date };

const busy = (a: Adjustment) => new ChangeoverError('CONFLICT', `adjustment ${a.adjustmentId} to version ${a.version} (by ${a.by}) is in progress; see \`changeover cluster-version status\``, { adjustmentId: a.adjustmentId, version: a.version });

/** Pure: the events a command produces against the state, or the typed error refusing it. */
export function decide(command: ClusterCommand, state: ClusterState): ClusterEvent[] | ChangeoverError {
  const at = command.now.toISOString();
  switch (command.type) {
    case 'Request':
    case 'Refuse': {
      if (state.status === 'adjusting') return busy(state.adjustment);
      if (command.version === state.activeVersion) return new ChangeoverError('INVALID_STATE', `the cluster already runs version ${command.version}`, { activeVersion: state.activeVersion });
      if (command.version < state.activeVersion) return new ChangeoverError('INVALID_STATE', `cannot lower the cluster version from ${state.activeVersion} to ${command.version}: groups may already use its functions`, { activeVersion: state.activeVersion });
      const why = command.reason ? { reason: command.reason } : {};
      if (command.type === 'Refuse') return [cev('cluster-version.adjust-refused', { version: command.version, by: command.by, ...why, blockers: command.blockers, at })];
      return [cev('cluster-version.adjust-requested', { adjustmentId: command.adjustmentId, version: command.version, by: command.by, groups: command.groups, ...why, at })];
    }
    case 'Abandon':
      if (state.status !== 'adjusting' || state.adjustment.adjustmentId !== command.adjustmentId) return [];
      return [cev('cluster-version.adjust-refused', { version: state.adjustment.version, by: state.adjustment.by, blockers: command.blockers, at })];
    case 'Acknowledge': {
      if (state.status !== 'adjusting' || state.adjustment.adjustmentId !== command.adjustmentId) return [];
      const seen = new Set(state.adjustment.acked);
      const fresh: ClusterEvent[] = [];
      for (const m of command.members) {
        const key = ackKey(m.groupId, m.memberId);
        if (seen.has(key)) continue;
        seen.add(key);
        fresh.push(cev('cluster-version.member-acknowledged', { adjustmentId: command.adjustmentId, groupId: m.groupId, memberId: m.memberId, at }));
      }
      return fresh;
    }
    case 'Complete':
      if (state.status !== 'adjusting' || state.adjustment.adjustmentId !== command.adjustmentId) return [];
      return [cev('cluster-version.adjusted', { adjustmentId: command.adjustmentId, version: state.adjustment.version, groups: command.groups, at })];
    default: {
      const never: never = command;
      return never;
    }
  }
}

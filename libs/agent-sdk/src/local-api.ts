import { z } from 'zod';
import { Name, RolloutId, SemVer, Text, VetoReason } from '@changeover/contracts';

// The agent's local API (HTTP over a Unix socket). Processes long-poll for events and answer each one.
// Paths are versioned: a group API (join/leave/view) is added under /v1/groups without touching these.

export const LOCAL_API_PATHS = {
  register: '/v1/register',
  events: '/v1/events',
  answer: (eventId: string) => `/v1/events/${encodeURIComponent(eventId)}/answer`,
} as const;

/**
 * Env variables the agent gives every module process it starts. `token` is that process's own
 * credential: only the process the agent started under a process id can speak as that id. A
 * process the agent does not start (listed in the agent's AGENT_EXTERNAL_PROCESSES) reads its
 * credential from the file named by `tokenFile` instead.
 */
export const AGENT_ENV = { socket: 'CHANGEOVER_AGENT_SOCKET', processId: 'CHANGEOVER_PROCESS_ID', token: 'CHANGEOVER_PROCESS_TOKEN', tokenFile: 'CHANGEOVER_PROCESS_TOKEN_FILE' } as const;

/** Headers every local API request carries: the caller's process id and its credential. */
export const CREDENTIAL_HEADERS = { processId: 'x-changeover-process-id', token: 'x-changeover-process-token' } as const;

/** Who a request speaks for; the agent checks the token against the id it issued it to. */
export interface ProcessCredential {
  processId: string;
  token: string;
}

export const EVENT_KINDS = ['evaluate', 'prepare', 'changed'] as const;
export const EventKind = z.enum(EVENT_KINDS);
export type EventKind = z.infer<typeof EventKind>;

export const ProcessId = z.string().min(1).max(200);

export const RegisterRequest = z.strictObject({
  processId: ProcessId,
  /** The events this process answers; others are answered for it (evaluate → accept, prepare → ready). */
  handles: z.array(EventKind).max(EVENT_KINDS.length),
});
export type RegisterRequest = z.infer<typeof RegisterRequest>;

/** A package change as a process sees it. */
export const PackageChange = z.strictObject({
  name: Name,
  fromVersion: SemVer.nullable(),
  toVersion: SemVer.nullable(),
});
export type PackageChange = z.infer<typeof PackageChange>;

const EventBase = {
  id: z.string().min(1).max(200),
  rolloutId: RolloutId,
  attempt: z.number().int().nonnegative(),
  changes: z.array(PackageChange).max(256),
  /** Modules whose binaries change. */
  replacedModules: z.array(Name).max(1000),
  /** Why this process is concerned: `replaced`, `depends-on:<module>`, `consumes:<api>`. */
  why: z.array(z.string().max(200)).max(100),
};

export const AgentEvent = z.discriminatedUnion('kind', [
  z.strictObject({ ...EventBase, kind: z.literal('evaluate'), deadlineMs: z.number().int().nonnegative() }),
  z.strictObject({ ...EventBase, kind: z.literal('prepare'), deadlineMs: z.number().int().nonnegative() }),
  z.strictObject({ ...EventBase, kind: z.literal('changed'), restart: z.boolean() }),
]);
export type AgentEvent = z.infer<typeof AgentEvent>;

export const EventsReply = z.strictObject({ events: z.array(AgentEvent).max(100) });
export type EventsReply = z.infer<typeof EventsReply>;

export const EvaluateAnswer = z.discriminatedUnion('decision', [
  z.strictObject({ decision: z.literal('accept') }),
  z.strictObject({ decision: z.literal('veto'), reason: VetoReason, message: Text, retryAfterMs: z.number().int().nonnegative().max(86_400_000).optional() }),
]);
export type EvaluateAnswer = z.infer<typeof EvaluateAnswer>;

export const PrepareAnswer = z.strictObject({ ready: z.boolean(), message: Text.default('') });
export type PrepareAnswer = z.infer<typeof PrepareAnswer>;

export const AnswerRequest = z.strictObject({
  processId: ProcessId,
  answer: z.union([EvaluateAnswer, PrepareAnswer, z.strictObject({ ack: z.literal(true) })]),
});
export type AnswerRequest = z.infer<typeof AnswerRequest>;

// ── Groups (under /v1/groups): join, leave, the member's view, leader election from cluster version 2 ──

export const GROUP_PATHS = {
  join: (groupId: string) => `/v1/groups/${encodeURIComponent(groupId)}/join`,
  leave: (groupId: string) => `/v1/groups/${encodeURIComponent(groupId)}/leave`,
  view: (groupId: string) => `/v1/groups/${encodeURIComponent(groupId)}`,
  leader: (groupId: string) => `/v1/groups/${encodeURIComponent(groupId)}/leader`,
} as const;

export const MemberId = z.string().min(1).max(128);

export const GroupJoinRequest = z.strictObject({ processId: ProcessId, memberId: MemberId });
export type GroupJoinRequest = z.infer<typeof GroupJoinRequest>;
export const GroupLeaveRequest = z.strictObject({ processId: ProcessId, memberId: MemberId, cause: Text.default('') });
export type GroupLeaveRequest = z.infer<typeof GroupLeaveRequest>;

/** A member's view of its group, as its agent applied the group's ordered log. */
export const GroupMemberView = z.strictObject({
  groupId: z.string().max(64),
  memberId: MemberId,
  nodeId: z.string().max(64),
  /** The member is in the group's log and this agent holds it. */
  joined: z.boolean(),
  /** The cluster infrastructure version the group runs on this node. */
  activeVersion: z.number().int().positive(),
  lastSequence: z.number().int().nonnegative(),
  members: z.array(z.strictObject({ memberId: MemberId, nodeId: z.string().max(64) })).max(1000),
  /** Group functions available at this version (`leader-election` from version 2). */
  features: z.array(z.string().max(64)).max(64),
});
export type GroupMemberView = z.infer<typeof GroupMemberView>;

export const LeaderReply = z.strictObject({
  groupId: z.string().max(64),
  leader: z.strictObject({ memberId: MemberId, nodeId: z.string().max(64) }).nullable(),
  sequence: z.number().int().nonnegative(),
  version: z.number().int().positive(),
});
export type LeaderReply = z.infer<typeof LeaderReply>;

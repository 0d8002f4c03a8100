import { z } from 'zod';
import { Characteristics, Digest, MAX, Name, PackageManifest, ProcessorType, SelectedPackage, SemVer, Signature, SignedPackage, Text, Timestamp, VersionRange } from './domain.js';
import { ClassId, GroupId, NodeId, RolloutId } from './ids.js';

// ── Commands: orchestrator → node (changeover.node.<id>.<cmd>) or class (changeover.class.<id>.<cmd>) ──

const CommandBase = {
  rolloutId: RolloutId,
  /** Increases on every re-vote / re-commit; agents answer a repeat of the same attempt from their record. */
  attempt: z.number().int().nonnegative(),
  /** Set on class broadcasts so that a node of another class that somehow receives it ignores it. */
  classId: ClassId.optional(),
  /** Set on per-node messages. */
  nodeId: NodeId.optional(),
};

/** Ask the node to evaluate an update (claim 1): package identities and module dependencies. */
export const ProposeCommand = z.strictObject({
  ...CommandBase,
  packages: z.array(SelectedPackage).min(1).max(256),
  /** The signed manifests of the proposed packages, so a node with trust roots vetoes a bad signature at vote time (claim 5). Optional: older senders omit it and the signature is checked at commit. */
  signed: z.array(SignedPackage).max(256).optional(),
  voteTimeoutMs: z.number().int().positive().max(3_600_000),
  /** A plan (dry run): vote, but remember nothing as pending. */
  dryRun: z.boolean().default(false),
  /** Operator forced the rollout: the node records the proposal but accepts (claim 19). */
  forced: z.boolean().default(false),
});
export type ProposeCommand = z.infer<typeof ProposeCommand>;

/** The update is accepted: install (claim 7) and change over (claims 8, 14). */
export const CommitCommand = z.strictObject({
  ...CommandBase,
  packages: z.array(z.strictObject({ manifest: PackageManifest, signature: Signature.optional() })).min(1).max(256),
  changeoverTimeoutMs: z.number().int().positive().max(3_600_000),
  forced: z.boolean().default(false),
});
export type CommitCommand = z.infer<typeof CommitCommand>;

export const AbortCommand = z.strictObject({ ...CommandBase, reason: Text });
export type AbortCommand = z.infer<typeof AbortCommand>;

/** Go back to the previous set, or to a named package version (claim 11). */
export const RegressCommand = z.strictObject({
  ...CommandBase,
  to: z.discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('previous') }),
    z.strictObject({ kind: z.literal('version'), package: Name, version: SemVer }),
  ]),
  reason: Text.default(''),
});
export type RegressCommand = z.infer<typeof RegressCommand>;

/** A validate round: every member of every group on the node reports its view of the log. */
export const ValidateCommand = z.strictObject({
  requestId: z.string().min(1).max(MAX.name),
  groups: z.array(GroupId).max(MAX.list).optional(),
});
export type ValidateCommand = z.infer<typeof ValidateCommand>;

// ── Reports: node → orchestrator (changeover.agent.<id>.<report>) ──

export const InstalledModule = z.strictObject({ name: Name, version: SemVer, digest: Digest });
export const InstalledPackage = z.strictObject({
  name: Name,
  version: SemVer,
  modules: z.array(InstalledModule).max(256),
  requires: z.record(Name, z.string().max(MAX.name)).default({}),
  provides: z.array(z.string().max(MAX.name)).default([]),
  consumes: z.array(z.string().max(MAX.name)).default([]),
});
export type InstalledPackage = z.infer<typeof InstalledPackage>;

/** What a node runs (claim 9): active packages, the previous set kept for regression. */
export const Inventory = z.strictObject({
  active: z.array(InstalledPackage).max(1024),
  previous: z.array(InstalledPackage).max(1024).default([]),
  /** sha256 over the canonical active set; equal digests mean equal inventories. */
  digest: Digest,
});
export type Inventory = z.infer<typeof Inventory>;

export const HelloReport = z.strictObject({
  nodeId: NodeId,
  classId: ClassId,
  processorType: ProcessorType.exclude(['any']),
  characteristics: Characteristics,
  agentVersion: SemVer,
  clusterVersions: VersionRange,
  inventory: Inventory,
  startedAt: Timestamp,
});
export type HelloReport = z.infer<typeof HelloReport>;

export const NODE_PHASES = ['idle', 'voting', 'fetching', 'preparing', 'starting', 'switching', 'regressing'] as const;
export const NodePhase = z.enum(NODE_PHASES);

export const HeartbeatReport = z.strictObject({
  nodeId: NodeId,
  classId: ClassId,
  at: Timestamp,
  agentVersion: SemVer,
  clusterVersions: VersionRange,
  inventoryDigest: Digest,
  phase: NodePhase,
});
export type HeartbeatReport = z.infer<typeof HeartbeatReport>;

export const VETO_REASONS = ['PROCESS_BUSY', 'API_INCOMPATIBLE', 'INSUFFICIENT_RESOURCES', 'PROCESSOR_UNSUPPORTED', 'SIGNATURE_INVALID', 'NO_ANSWER', 'CUSTOM'] as const;
export const VetoReason = z.enum(VETO_REASONS);
export type VetoReason = z.infer<typeof VetoReason>;

/** One process's answer (claim 5). `processId` is `agent` for the agent's own verdicts. */
export const Verdict = z.discriminatedUnion('decision', [
  z.strictObject({ processId: z.string().min(1).max(MAX.name), module: Name.optional(), decision: z.literal('accept') }),
  z.strictObject({
    processId: z.string().min(1).max(MAX.name),
    module: Name.optional(),
    decision: z.literal('veto'),
    reason: VetoReason,
    message: Text,
    retryAfterMs: z.number().int().nonnegative().max(86_400_000).optional(),
  }),
]);
export type Verdict = z.infer<typeof Verdict>;

/** The node's one vote after all affected processes answered or the deadline passed (claim 6). */
export const VoteReport = z.strictObject({
  nodeId: NodeId,
  rolloutId: RolloutId,
  attempt: z.number().int().nonnegative(),
  decision: z.enum(['accept', 'veto']),
  verdicts: z.array(Verdict).max(MAX.list),
  affectedProcesses: z.array(z.string().max(MAX.name)).max(MAX.list),
  dryRun: z.boolean().default(false),
});
export type VoteReport = z.infer<typeof VoteReport>;

export const PROGRESS_PHASES = ['fetching', 'preparing', 'starting', 'switching', 'completed', 'failed', 'regressed', 'aborted'] as const;
export const ProgressPhase = z.enum(PROGRESS_PHASES);
export type ProgressPhase = z.infer<typeof ProgressPhase>;

export const ProgressReport = z.strictObject({
  nodeId: NodeId,
  rolloutId: RolloutId,
  attempt: z.number().int().nonnegative(),
  phase: ProgressPhase,
  bytesFetched: z.number().int().nonnegative().optional(),
  modulesFetched: z.number().int().nonnegative().optional(),
  modulesUnchanged: z.number().int().nonnegative().optional(),
  error: z.strictObject({ code: z.string().max(MAX.name), message: Text }).optional(),
  /** Present on `completed`, `failed` and `regressed`: what the node runs now (claim 9). */
  inventory: Inventory.optional(),
});
export type ProgressReport = z.infer<typeof ProgressReport>;

export const InventoryReport = z.strictObject({ nodeId: NodeId, at: Timestamp, inventory: Inventory });
export type InventoryReport = z.infer<typeof InventoryReport>;

/** A member's view of its group's log, answering a validate round. */
export const ValidatedReport = z.strictObject({
  nodeId: NodeId,
  requestId: z.string().min(1).max(MAX.name),
  groups: z.array(
    z.strictObject({
      groupId: GroupId,
      memberId: z.string().min(1).max(MAX.name),
      lastSequence: z.number().int().nonnegative(),
      activeVersion: z.number().int().positive(),
      members: z.array(z.string().max(MAX.name)).max(MAX.list),
    }),
  ).max(MAX.list),
});
export type ValidatedReport = z.infer<typeof ValidatedReport>;

/** Schema for each report, by the last subject token. */
export const REPORT_SCHEMAS = {
  hello: HelloReport,
  heartbeat: HeartbeatReport,
  vote: VoteReport,
  progress: ProgressReport,
  inventory: InventoryReport,
  validated: ValidatedReport,
} as const;

/** Schema for each command, by the last subject token. */
export const COMMAND_SCHEMAS = {
  propose: ProposeCommand,
  commit: CommitCommand,
  abort: AbortCommand,
  regress: RegressCommand,
  validate: ValidateCommand,
} as const;

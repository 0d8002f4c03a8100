import type { AgentReport, Module, PackageManifest, PackageRef, Signature, VetoReason } from '@changeover/contracts';
import type { AgentEvent } from '@changeover/agent-sdk';
import type { UnitTracer } from '@changeover/telemetry';
import type { RunningProcess } from '../affected/affected-processes.js';
import type { NodeState, StoredPackage } from '../model/state.js';

// The agent core talks to the world only through these ports: the real runtime implements them with
// the file system, child processes and a Unix socket; the simulated one with memory.

/** The node's persistent store (design §7): every save is atomic. */
export interface ModuleStore {
  load(): Promise<NodeState>;
  /** Done when it returns nothing (a store in memory); otherwise once the promise resolves. */
  save(state: NodeState): void | Promise<void>;
  hasBlob(digest: string): boolean | Promise<boolean>;
  /** Free bytes where module blobs go. */
  freeBytes(): Promise<number>;
}

/**
 * Disk hygiene (issue 20): after a changeover completes and at start-up the node drops the package
 * versions it no longer keeps and deletes the module files nothing uses any more.
 */
export interface DiskHygiene {
  /** The state to keep (older kept versions dropped), or the same object; the core saves it before `sweep` runs. */
  retain(state: NodeState): NodeState;
  /** Deletes module files neither this saved state nor anything running uses; failures are counted and logged. */
  sweep(state: NodeState): Promise<unknown>;
}

/** Gets one module blob into the store, verifying its digest; returns the bytes transferred. */
export interface ModuleFetcher {
  fetch(module: Module): number | Promise<number>;
}

/** Signed manifests of old versions, for regression to a version no longer local. */
export interface ManifestSource {
  get(ref: PackageRef): Promise<{ manifest: PackageManifest; signature?: Signature } | null>;
}

export type EvaluateVerdict = { decision: 'accept' } | { decision: 'veto'; reason: VetoReason; message: string; retryAfterMs?: number };
export type PrepareResult = { ready: true } | { ready: false; message: string };

export type EventPayload = AgentEvent extends infer E ? (E extends AgentEvent ? Omit<E, 'id'> : never) : never;

/** What runs on the node. Deadlines are applied by the core; a runtime may simply never answer. */
export interface ProcessRuntime {
  running(): RunningProcess[];
  /** Node-wide processes asked about every update, whatever it touches (a simulated node's application). */
  residents?(): RunningProcess[];
  /** The hook answers below may come at once (a simulated runtime) or later; deadlines apply to the later ones. */
  evaluate(processId: string, event: Extract<EventPayload, { kind: 'evaluate' }>): EvaluateVerdict | Promise<EvaluateVerdict>;
  prepare(processId: string, event: Extract<EventPayload, { kind: 'prepare' }>): PrepareResult | Promise<PrepareResult>;
  notifyChanged(processId: string, event: Extract<EventPayload, { kind: 'changed' }>): void | Promise<void>;
  /** Starts the target set's new or changed processes beside the old ones and waits for their health checks. */
  startCandidates(target: StoredPackage[], deadlineMs: number): Promise<{ ok: true } | { ok: false; output: string }>;
  /** Makes the candidates the live processes and stops the ones they replace, gracefully. */
  switchOver(target: StoredPackage[]): Promise<void>;
  /** Stops any candidates that were started (a failed changeover). */
  discardCandidates(): Promise<void>;
  /** Restarts these processes (their manifest asks for it on change): the new instance is healthy before the old stops. */
  restart(processIds: string[], deadlineMs: number): Promise<{ ok: true } | { ok: false; output: string }>;
  /** Brings the running processes to exactly this set (start-up, recovery). */
  apply(set: StoredPackage[]): Promise<void>;
  stopAll(): Promise<void>;
}

/** Where reports go: changeover.agent.<node>.<report>. */
export interface ReportSink {
  publish(nodeId: string, report: AgentReport, body: unknown): void;
}

/** Named instants in a changeover; the real runtime can stop dead at one to test crash recovery. */
export type FaultPoint = 'after-fetch' | 'after-prepare' | 'mid-switch' | 'before-confirm';

export interface NodeIdentity {
  nodeId: string;
  classId: string;
  processorType: 'x86_64' | 'arm64';
}

export interface CoreOptions {
  identity: NodeIdentity;
  store: ModuleStore;
  fetcher: ModuleFetcher;
  runtime: ProcessRuntime;
  sink: ReportSink;
  manifests?: ManifestSource;
  /** Verifies a package signature; throws SIGNATURE_INVALID / UNTRUSTED_KEY. */
  verifySignature: (manifest: PackageManifest, signature: Signature | undefined) => void;
  minFreeBytes: number;
  /** Garbage collection of old versions and module files (none: everything fetched stays). */
  hygiene?: DiskHygiene;
  onFault?: (point: FaultPoint) => void;
  counters: Counters;
  log: Log;
  /** Spans of the node's part in a rollout (none by default). */
  tracing?: UnitTracer;
  /**
   * Live phases (fetching … switching) of a changeover are reported only once it has run this long,
   * then at most this often (default 1000 ms): a fleet of fast changeovers sends one report per node,
   * a slow one still shows where it is. Terminal reports always go at once.
   */
  liveProgressEveryMs?: number;
}

export interface Counters {
  inc(name: string, labels?: Record<string, string>, by?: number): void;
}

export interface Log {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

import { createHash } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { subscribeValidated, type RateLimit, type ValidatedSubscription } from '@changeover/messaging';
import { canonicalJson, HelloReport, isAgentReportSubject, isChangeoverError, subjects, type Inventory, type PackageRef, type RolloutPolicy, type RolloutSummary, type SoftwareUpdate } from '@changeover/contracts';
import { metrics, type Logger } from '@changeover/telemetry';

const reconciles = metrics.counter({
  name: 'changeover_rollout_reconciles_total',
  help: 'Hellos checked against their class configuration, by outcome (in-step, no-configuration, in-rollout, started, duplicate, refused, failed)',
  labelNames: ['outcome'] as const,
});

/** The queue group that gives each hello to one instance for reconciliation (delivery is plain core NATS). */
export const RECONCILE_QUEUE = 'changeover-rollout-reconcile';
/** Created by (audit trail and idempotent re-creation: the same actor and update is the same rollout). */
export const RECONCILE_ACTOR = { actor: 'system:reconcile', actorTokenId: 'system', actorRole: 'operator' } as const;

/** The desired packages the node's active set lacks in that exact version. */
export function missingPackages(desired: readonly PackageRef[], inventory: Inventory): PackageRef[] {
  const active = new Set(inventory.active.map((p) => `${p.name}@${p.version}`));
  return desired.filter((p) => !active.has(`${p.name}@${p.version}`));
}

/**
 * One id per (node, class, desired configuration, the inventory the node reported): a node repeating
 * its hello asks for the rollout already made, so a restart loop starts one rollout, not one per hello.
 * A node whose inventory changed (the reconcile applied, or something else moved it) gets a new id.
 */
export function reconcileRolloutId(nodeId: string, classId: string, desired: readonly PackageRef[], inventoryDigest: string): string {
  const h = createHash('sha256').update(canonicalJson({ nodeId, classId, desired, inventoryDigest })).digest('hex');
  return `reconcile-${h.slice(0, 40)}`;
}

export interface ReconcileDeps {
  /** The class's desired packages; null for a class the registry does not know. */
  classPackages(classId: string): Promise<PackageRef[] | null>;
  /** True when a rollout this instance runs still has work for the node: that rollout brings it along (no query). */
  inActiveRollout(nodeId: string): boolean;
  /** The unfinished rollout of any instance that has the node, else null (read from Postgres, not memory). */
  coveringRollout(nodeId: string): Promise<string | null>;
  /** Runs the check and the creation it allows under the node's cluster-wide reconcile lock. */
  exclusive<T>(nodeId: string, work: () => Promise<T>): Promise<T>;
  create(req: { rolloutId: string; update: SoftwareUpdate; policy: RolloutPolicy }): Promise<RolloutSummary>;
  policy: RolloutPolicy;
  log: Logger;
  /** Waits between tries when the registry has not stored the node's hello yet (it hears the same hello). */
  retryMs?: number;
}

/**
 * DESIGN §3: a node that joins a class later (or was away during the class's rollout) is brought to
 * the class's configuration when it says hello. The hello carries the node's inventory and class;
 * the registry holds the class's desired packages. When packages are missing, a rollout of exactly
 * those packages to that one node is created under a deterministic id, unless an unfinished rollout
 * of any instance has the node already (that one brings it along).
 */
export async function reconcileOnHello(hello: HelloReport, deps: ReconcileDeps, tries = 4): Promise<string> {
  if (deps.inActiveRollout(hello.nodeId)) return count('in-rollout');
  const desired = await deps.classPackages(hello.classId);
  if (!desired || desired.length === 0) return count('no-configuration');
  const missing = missingPackages(desired, hello.inventory);
  if (missing.length === 0) return count('in-step');
  const rolloutId = reconcileRolloutId(hello.nodeId, hello.classId, desired, hello.inventory.digest);
  const update: SoftwareUpdate = { description: `reconcile ${hello.nodeId} to class ${hello.classId}`, targets: [{ nodes: [hello.nodeId], packages: missing }] };
  // One instance at a time per node, cluster-wide: two hellos of a node (with different inventories,
  // so different ids) handled at once by two instances start one rollout, and a rollout another
  // instance runs for the node is seen before a reconcile is created.
  return deps.exclusive(hello.nodeId, async () => {
    const covering = await deps.coveringRollout(hello.nodeId);
    if (covering) {
      deps.log.debug({ nodeId: hello.nodeId, rolloutId: covering }, 'node in an unfinished rollout: no reconcile');
      return count('in-rollout');
    }
    return createReconcile(hello, deps, { rolloutId, update, missing }, tries);
  });
}

async function createReconcile(hello: HelloReport, deps: ReconcileDeps, r: { rolloutId: string; update: SoftwareUpdate; missing: PackageRef[] }, tries: number): Promise<string> {
  const { rolloutId, update, missing } = r;
  for (let attempt = 1; ; attempt++) {
    try {
      await deps.create({ rolloutId, update, policy: deps.policy });
      deps.log.info({ nodeId: hello.nodeId, classId: hello.classId, rolloutId, packages: missing.map((p) => `${p.name}@${p.version}`) }, 'reconcile rollout created');
      return count('started');
    } catch (e) {
      // The node's reconcile id names a rollout already made for this very state: the hello is a repeat.
      if (isChangeoverError(e, 'CONFLICT')) return count('duplicate');
      // The registry enrols a new node from this same hello: until it has, the node is unknown to it.
      const transient = isChangeoverError(e, 'NOT_FOUND') || isChangeoverError(e, 'UNAVAILABLE') || isChangeoverError(e, 'TIMEOUT') || isChangeoverError(e, 'VERSION_CONFLICT');
      if (!transient || attempt >= tries) {
        deps.log.warn({ err: e, nodeId: hello.nodeId, rolloutId }, 'reconcile rollout not created');
        return count(isChangeoverError(e) && !transient ? 'refused' : 'failed');
      }
      await new Promise((r) => setTimeout(r, (deps.retryMs ?? 500) * 2 ** (attempt - 1)));
    }
  }
}

/**
 * A class's configuration looked up once per class and `ttlMs`, shared by the hellos that arrive
 * meanwhile: a fleet starting up says 10,000 hellos in a few seconds, which would otherwise be 10,000
 * registry requests for a handful of classes. A failed lookup is not kept.
 */
export function sharedClassLookups(fetch: (classId: string) => Promise<PackageRef[] | null>, ttlMs: number, now: () => number = Date.now): (classId: string) => Promise<PackageRef[] | null> {
  const kept = new Map<string, { at: number; value: Promise<PackageRef[] | null> }>();
  return (classId) => {
    const hit = kept.get(classId);
    if (hit && now() - hit.at < ttlMs) return hit.value;
    if (kept.size > 10_000) kept.clear();
    const value = fetch(classId);
    kept.set(classId, { at: now(), value });
    value.catch(() => {
      if (kept.get(classId)?.value === value) kept.delete(classId);
    });
    return value;
  };
}

function count(outcome: string): string {
  reconciles.inc({ outcome });
  return outcome;
}

/** Hellos in a queue group: each is reconciled by one instance. Rate limited per node like every hello. */
export function startClassReconcile(nc: NatsConnection, deps: ReconcileDeps & { helloRate?: Omit<RateLimit, 'key'> }): ValidatedSubscription {
  const limit = deps.helloRate ? { rateLimit: { ...deps.helloRate, key: (subject: string) => subject.split('.')[2] ?? '' } } : {};
  return subscribeValidated(
    nc,
    subjects.agentAny('hello'),
    HelloReport,
    async (hello, ctx) => {
      // The subject's node is what NATS permissions vouch for (the intake counts the refusal).
      if (!isAgentReportSubject(ctx.subject, hello.nodeId, 'hello')) return;
      await reconcileOnHello(hello, deps).catch((e: unknown) => {
        count('failed');
        deps.log.warn({ err: e, nodeId: hello.nodeId }, 'reconcile check failed');
      });
    },
    // The intake's hello subscription counts every refused hello; this one does not count them twice.
    { queue: RECONCILE_QUEUE, logger: deps.log, secondary: true, ...limit },
  );
}

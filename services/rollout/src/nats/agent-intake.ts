import type { NatsConnection } from '@nats-io/transport-node';
import { subscribeValidated, type RateLimit, type ValidatedSubscription } from '@changeover/messaging';
import { ChangeoverError, HelloReport, isAgentReportSubject, JsonInterner, ProgressReport, subjects, VoteReport, type AgentReport, type Inventory } from '@changeover/contracts';
import { changeoverMetrics, type Logger } from '@changeover/telemetry';
import { z } from 'zod';
import type { RolloutRunner } from '../workflow/rollout.runner.js';
import type { Planner } from '../planning/planner.js';

export const APPENDED_SUBJECT = subjects.rollout('appended');
export const AppendedNotice = z.strictObject({ rolloutId: z.string().min(1).max(64) });

/** The node id in the subject is what NATS permissions vouch for: a report about another node is refused. */
function sameNode(subject: string, nodeId: string, report: AgentReport, log: Logger): boolean {
  if (isAgentReportSubject(subject, nodeId, report)) return true;
  changeoverMetrics.rejectedMessages.inc({ subject_kind: 'agent', code: 'FORBIDDEN' });
  log.warn({ subject, nodeId }, 'agent report names another node than its subject: rejected');
  return false;
}

/**
 * Agent reports reach every instance (plain subscriptions, no queue group); only the owner of the
 * rollout acts on them.
 */
export function startAgentIntake(nc: NatsConnection, deps: { runner: RolloutRunner; planner: Planner; log: Logger; clock: () => Date; helloRate?: Omit<RateLimit, 'key'> }): ValidatedSubscription[] {
  const { runner, planner, log, clock } = deps;
  // A hello makes every owned rollout re-send what the node is owed: limited per node (the node id is the subject's third token).
  const helloLimit = deps.helloRate ? { rateLimit: { ...deps.helloRate, key: (subject: string) => subject.split('.')[2] ?? '' } } : {};
  const onInvalid = (e: ChangeoverError, ctx: { subject: string }) => log.warn({ code: e.code, subject: ctx.subject, err: e.message }, 'agent report rejected');
  const refused = (e: unknown) => log.info({ err: e instanceof Error ? e.message : String(e) }, 'agent report refused');
  // A wave's completions carry a handful of distinct inventories 10,000 times: each report queued for
  // its batch holds the shared equal one, and its own decoded copy is garbage at once.
  const inventories = new JsonInterner<Inventory>();
  return [
    // Reports are queued, not awaited: 10,000 of them wait for their batch's append as plain commands,
    // not as 10,000 suspended handlers.
    subscribeValidated(nc, subjects.agentAny('vote'), VoteReport, (report, ctx) => {
      if (!sameNode(ctx.subject, report.nodeId, 'vote', log)) return;
      if (report.dryRun) return planner.onVote(report);
      runner.post(report.rolloutId, { type: 'RecordVote', now: clock(), report }, `node:${report.nodeId}`, refused);
    }, { onInvalid, logger: log }),
    subscribeValidated(nc, subjects.agentAny('progress'), ProgressReport, (report, ctx) => {
      if (!sameNode(ctx.subject, report.nodeId, 'progress', log) || !runner.isOwned(report.rolloutId)) return;
      if (report.inventory) report.inventory = inventories.intern(report.inventory.digest, report.inventory);
      runner.post(report.rolloutId, { type: 'RecordProgress', now: clock(), report }, `node:${report.nodeId}`, refused);
      // A completion ends with the node's inventory, the same text from every node of a wave: validated once.
    }, { onInvalid, logger: log, repeatedTail: 'inventory' }),
    subscribeValidated(nc, subjects.agentAny('hello'), HelloReport, async (report, ctx) => {
      if (!sameNode(ctx.subject, report.nodeId, 'hello', log)) return;
      await runner.hello(report.nodeId);
    }, { onInvalid, logger: log, ...helloLimit }),
    subscribeValidated(nc, APPENDED_SUBJECT, AppendedNotice, async ({ rolloutId }) => {
      await runner.catchUp(rolloutId);
    }, { onInvalid, logger: log }),
  ];
}

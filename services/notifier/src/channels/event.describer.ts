import { fromCloudEventType, isEventType, type EventData, type EventType } from '@changeover/contracts';
import type { DeliveryJob } from './channel.js';

/** A human reading of an event: what happened, which nodes, why, and the command to act. */
export interface Description {
  title: string;
  lines: string[];
  actions: string[];
}

const MAX_LINES = 20;

function capped(lines: string[]): string[] {
  return lines.length > MAX_LINES ? [...lines.slice(0, MAX_LINES), `… and ${lines.length - MAX_LINES} more`] : lines;
}

const seconds = (ms: number) => (ms % 1000 === 0 ? `${ms / 1000}s` : `${(ms / 1000).toFixed(1)}s`);

/** Describes the events notified by default; any other known event gets a generic line. */
export function describeEvent(type: EventType, data: unknown, subject?: string): Description {
  switch (type) {
    case 'rollout.blocked': {
      const d = data as EventData<'rollout.blocked'>;
      // The event lists the first vetoes; its counts cover all of them.
      return {
        title: `Rollout ${d.rolloutId} is blocked: ${d.vetoCount} veto${d.vetoCount === 1 ? '' : 'es'} on ${d.vetoingNodes} node${d.vetoingNodes === 1 ? '' : 's'}`,
        lines: capped(
          d.vetoes.map(
            (v) =>
              `node ${v.nodeId}: process ${v.processId}${v.module ? ` (module ${v.module})` : ''} vetoed with ${v.reason}: ${v.message}` +
              (v.retryAfterMs !== undefined ? ` (retry after ${seconds(v.retryAfterMs)})` : ''),
          ),
        ),
        actions: [`changeover rollout force ${d.rolloutId} --reason "…"`, `changeover rollout revote ${d.rolloutId} --reason "…"`],
      };
    }
    case 'rollout.dependency-discrepancy': {
      const { rolloutId, discrepancy: x } = data as EventData<'rollout.dependency-discrepancy'>;
      const what = x.kind === 'API_UNPROVIDED' ? 'API' : x.kind === 'MODULE_DEPENDENCY' ? 'module' : 'package';
      return {
        title: `Rollout ${rolloutId}: dependency discrepancy on node ${x.nodeId}`,
        lines: [`node ${x.nodeId}: package ${x.package} needs ${what} ${x.missing}, which is missing (${x.kind})`, x.message].filter(Boolean),
        actions: [`changeover rollout regress ${rolloutId} --node ${x.nodeId} --reason "…"`],
      };
    }
    case 'rollout.paused': {
      const d = data as EventData<'rollout.paused'>;
      return {
        title: `Rollout ${d.rolloutId} paused by its error threshold`,
        lines: [`why: ${d.reason}`, `${d.failed} node(s) failed, ${d.committed} committed`],
        actions: [`changeover rollout resume ${d.rolloutId}`, `changeover rollout cancel ${d.rolloutId} --reason "…"`],
      };
    }
    case 'rollout.failed': {
      const d = data as EventData<'rollout.failed'>;
      return { title: `Rollout ${d.rolloutId} failed`, lines: [`why: ${d.reason}`], actions: [`changeover rollout regress ${d.rolloutId} --reason "…"`] };
    }
    case 'rollout.completed': {
      const d = data as EventData<'rollout.completed'>;
      return { title: `Rollout ${d.rolloutId} completed`, lines: [`${d.nodes} node(s) updated, ${d.failed} failed`], actions: [] };
    }
    case 'cluster-version.adjust-refused': {
      const d = data as EventData<'cluster-version.adjust-refused'>;
      return {
        title: `Cluster version ${d.version} refused: ${d.blockers.length} blocker${d.blockers.length === 1 ? '' : 's'}`,
        lines: capped(
          d.blockers.map((b) => {
            const where = [b.nodeId ? `node ${b.nodeId}` : '', b.groupId ? `group ${b.groupId}` : ''].filter(Boolean).join(', ') || 'fleet';
            return `${where}: ${b.code}: ${b.message}${b.range ? ` (can run ${b.range})` : ''}${b.members?.length ? ` (members ${b.members.join(', ')})` : ''}`;
          }),
        ),
        actions: [`changeover cluster-version adjust ${d.version}`],
      };
    }
    case 'cluster-version.adjusted': {
      const d = data as EventData<'cluster-version.adjusted'>;
      return { title: `Cluster version adjusted to ${d.version}`, lines: [`${d.groups} group(s) moved (adjustment ${d.adjustmentId})`], actions: [] };
    }
    default:
      return { title: `${type}${subject ? ` (${subject})` : ''}`, lines: [JSON.stringify(data).slice(0, 1500)], actions: [] };
  }
}

/** The description of a stored delivery's event. */
export function describeJob(job: DeliveryJob): Description {
  const type = fromCloudEventType(job.event.type);
  // Stored events were validated on intake; the guard only narrows the type.
  return isEventType(type) ? describeEvent(type, job.event.data, job.event.subject) : { title: job.event.type, lines: [], actions: [] };
}

export const footerOf = (job: DeliveryJob) => `event ${job.event.id} · ${job.event.type} · ${job.event.time}`;

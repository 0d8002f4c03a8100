import { changeoverMetrics } from '@changeover/telemetry';

/** Coarse kind of a subject for metric labels (never the node id: that would explode cardinality). */
export function subjectKind(subject: string): string {
  const parts = subject.split('.');
  if (parts[0] !== 'changeover' || parts.length < 2) return 'other';
  const kind = parts[1]!;
  switch (kind) {
    case 'node':
    case 'class':
    case 'agent':
    case 'registry':
    case 'rollout':
    case 'group':
      return kind;
    case 'events':
      return 'event';
    default:
      return /^[a-z][a-z0-9-]{0,31}$/.test(kind) ? kind : 'other';
  }
}

/** Rejected (malformed) messages of one subscription, readable by its owner; also counted in Prometheus. */
export class RejectionCounter {
  private readonly counts = new Map<string, number>();
  total = 0;

  /** Counts one rejection of a message that arrived on `subject`. */
  count(subject: string, code: string): void {
    this.total += 1;
    this.counts.set(code, (this.counts.get(code) ?? 0) + 1);
    changeoverMetrics.rejectedMessages.inc({ subject_kind: subjectKind(subject), code });
  }

  /** Rejections with this code (all codes when omitted). */
  get(code?: string): number {
    return code === undefined ? this.total : (this.counts.get(code) ?? 0);
  }

  byCode(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }
}

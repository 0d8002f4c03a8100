import type { NatsConnection } from '@nats-io/transport-node';
import { encode, subjects, type NodeCommand, type SignedPackage } from '@changeover/contracts';
import { injectTraceHeaders } from '@changeover/telemetry';
import type { Action, Recipients } from '../workflow/rollout.workflow.js';
import type { ActiveState } from '../rollout/rollout.state.js';

type SendAction = Extract<Action, { kind: 'propose' | 'commit' | 'abort' | 'regress' }>;

/** Sends node commands: one message per class broadcast, else the same encoded payload to each node. */
export class CommandSender {
  /** Signed manifests per rollout and selection, fetched once for proposals and commits. */
  private readonly manifests = new Map<string, SignedPackage[]>();
  sent = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly getPackages: (refs: { name: string; version: string }[]) => Promise<SignedPackage[]>,
  ) {}

  async send(state: ActiveState, action: SendAction): Promise<void> {
    const base = { rolloutId: state.rolloutId, attempt: action.attempt };
    switch (action.kind) {
      case 'propose': {
        const a = state.assignments[action.selection]!;
        // The signed manifests ride along so a node with trust roots vetoes a bad signature at vote time.
        const signed = await this.signedPackages(state, action.selection);
        this.publish(action.to, 'propose', { ...base, packages: a.packages, signed, voteTimeoutMs: state.policy.voteTimeoutMs, dryRun: false, forced: false });
        return;
      }
      case 'commit': {
        const packages = await this.signedPackages(state, action.selection);
        this.publish(action.to, 'commit', { ...base, packages, changeoverTimeoutMs: state.policy.changeoverTimeoutMs, forced: action.forced });
        return;
      }
      case 'abort':
        this.publish(action.to, 'abort', { ...base, reason: action.reason.slice(0, 4000) });
        return;
      case 'regress':
        this.publish(action.to, 'regress', { ...base, to: action.target, reason: action.reason.slice(0, 4000) });
        return;
      default: {
        const never: never = action;
        return never;
      }
    }
  }

  forget(rolloutId: string): void {
    for (const k of this.manifests.keys()) if (k.startsWith(`${rolloutId}/`)) this.manifests.delete(k);
  }

  private async signedPackages(state: ActiveState, selection: number): Promise<SignedPackage[]> {
    const key = `${state.rolloutId}/${selection}`;
    const cached = this.manifests.get(key);
    if (cached) return cached;
    const refs = state.assignments[selection]!.packages.map((p) => ({ name: p.name, version: p.version }));
    const packages = await this.getPackages(refs);
    this.manifests.set(key, packages);
    return packages;
  }

  /** Class broadcasts carry classId so a node of another class ignores them. */
  publish(to: Recipients, command: NodeCommand, body: Record<string, unknown>): void {
    const headers = injectTraceHeaders();
    if (to.kind === 'class') {
      this.nc.publish(subjects.class(to.classId, command), encode({ ...body, classId: to.classId }), headers ? { headers } : undefined);
      this.sent++;
      return;
    }
    const payload = encode(body);
    for (const nodeId of to.nodeIds) {
      this.nc.publish(subjects.node(nodeId, command), payload, headers ? { headers } : undefined);
      this.sent++;
    }
  }
}

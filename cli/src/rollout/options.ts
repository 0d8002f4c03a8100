import { ChangeoverError, CreateRolloutRequest, parse, type PackageRef } from '@changeover/contracts';

export interface CreateOptions {
  package?: string[];
  node?: string[];
  class?: string[];
  file?: string;
  id?: string;
  description?: string;
  canary?: string;
  waveSize?: string;
  successThreshold?: string;
  errorThreshold?: string;
  onError?: string;
  quorum?: string;
  unreachable?: string;
  voteTimeout?: string;
  changeoverTimeout?: string;
  startAt?: string;
}

export function packageRef(spec: string): PackageRef {
  const at = spec.lastIndexOf('@');
  if (at <= 0) throw new ChangeoverError('VALIDATION_FAILED', `package ${JSON.stringify(spec)} must be name@version`);
  return { name: spec.slice(0, at), version: spec.slice(at + 1) };
}

const num = (v: string | undefined, what: string) => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new ChangeoverError('VALIDATION_FAILED', `${what} must be a number`);
  return n;
};

/** Turns `rollout create` flags (or an update file) into a create request, validated by the contract schema. */
export function createRequest(o: CreateOptions, fileJson?: unknown): CreateRolloutRequest {
  const policy: Record<string, unknown> = {};
  const waves: Record<string, unknown> = {};
  if (o.canary !== undefined) waves['canary'] = num(o.canary, '--canary');
  if (o.waveSize !== undefined) waves['size'] = o.waveSize.endsWith('%') ? o.waveSize : num(o.waveSize, '--wave-size');
  if (o.successThreshold !== undefined) waves['successThreshold'] = num(o.successThreshold, '--success-threshold');
  if (Object.keys(waves).length) policy['waves'] = waves;
  if (o.errorThreshold !== undefined) policy['errorThreshold'] = num(o.errorThreshold, '--error-threshold');
  if (o.onError !== undefined) policy['onErrorThreshold'] = o.onError;
  if (o.quorum !== undefined) policy['vote'] = { mode: 'quorum', toleratedVetoes: num(o.quorum, '--quorum') };
  if (o.unreachable !== undefined) policy['unreachable'] = o.unreachable;
  if (o.voteTimeout !== undefined) policy['voteTimeoutMs'] = num(o.voteTimeout, '--vote-timeout');
  if (o.changeoverTimeout !== undefined) policy['changeoverTimeoutMs'] = num(o.changeoverTimeout, '--changeover-timeout');
  let body: Record<string, unknown>;
  if (fileJson !== undefined) {
    // An update file holds either a whole create request or just the update.
    const f = fileJson as Record<string, unknown>;
    body = 'update' in f ? { ...f } : { update: f };
    if (Object.keys(policy).length) body['policy'] = { ...((body['policy'] as object) ?? {}), ...policy };
  } else {
    const packages = (o.package ?? []).map(packageRef);
    if (packages.length === 0) throw new ChangeoverError('VALIDATION_FAILED', 'give at least one --package name@version (or --file update.json)');
    const targets: unknown[] = [];
    if (o.node?.length) targets.push({ nodes: o.node, packages });
    if (o.class?.length) targets.push({ classes: o.class, packages });
    if (targets.length === 0) throw new ChangeoverError('VALIDATION_FAILED', 'give --node and/or --class targets');
    body = { update: { description: o.description ?? '', targets }, ...(Object.keys(policy).length ? { policy } : {}) };
  }
  if (o.id) body['rolloutId'] = o.id;
  if (o.startAt) body['startAt'] = o.startAt;
  return parse(CreateRolloutRequest, body, 'rollout');
}

import { spawn, type ChildProcess } from 'node:child_process';
import { get } from 'node:http';
import { join } from 'node:path';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { NatsConnection } from '@nats-io/transport-node';
import { Objm } from '@nats-io/obj';
import { decode, encode, HelloReport, MODULE_BUCKET, ProgressReport, subjects, VoteReport, type CommitCommand, type PackageManifest, type ProposeCommand, type RegressCommand, type Signature } from '@changeover/contracts';
import { waitFor } from '@changeover/test-kit';
import { digestOf, selectedOf } from './packages.js';

// Test harness: a real agent process, and the orchestrator's side of the wire played by the test.

export const AGENT_MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));
export const AGENT_SDK_MAIN = fileURLToPath(new URL('../../../../libs/agent-sdk/dist/index.js', import.meta.url));
export const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));

/** The local API's status for a zero-wait events poll of a process, asked with the given credential (none: a foreign client). */
export function localApiStatus(socketPath: string, processId: string, token?: string): Promise<number> {
  return new Promise((resolve) => {
    const headers = token ? { 'x-changeover-process-id': processId, 'x-changeover-process-token': token } : {};
    get({ socketPath, path: `/v1/events?processId=${encodeURIComponent(processId)}&waitMs=0`, headers }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', () => resolve(0));
  });
}

/** Whether a process the agent started has registered: asked as that process, with the credential in the agent's record of it. */
export function localApiKnows(processId: string, socketPath: string): Promise<boolean> {
  let token: string;
  try {
    ({ token } = JSON.parse(readFileSync(join(socketPath, '..', 'run', `${processId}.json`), 'utf8')) as { token: string });
  } catch {
    return Promise.resolve(false);
  }
  return localApiStatus(socketPath, processId, token).then((s) => s === 200);
}

export interface AgentProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  stderr: () => string;
  stdout: () => string;
  stop(): Promise<void>;
}

const spawned = new Set<ChildProcess>();

/** Stops every agent a test file started and any module process left under `stateRoot` (a failed test must not keep jest alive). */
export async function cleanUpAgents(stateRoot: string): Promise<void> {
  for (const child of spawned) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  spawned.clear();
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      if (env.some((e) => e.startsWith(`CHANGEOVER_STATE_DIR=${stateRoot}`))) process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
}

/** Starts `node dist/main.js` and resolves when it prints its ready line. */
export async function spawnAgent(env: Record<string, string>): Promise<AgentProcess> {
  const child = spawn(process.execPath, [AGENT_MAIN], { env: { PATH: process.env['PATH'], LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  spawned.add(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-20_000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let dead = false;
  void exited.then(() => (dead = true));
  await waitFor('agent ready line', () => {
    if (dead) throw new Error(`agent exited during start: ${err}`);
    return out.includes('"ready":true');
  }, { timeoutMs: 30_000 });
  return {
    child,
    exited,
    stderr: () => err,
    stdout: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Puts module blobs into the object store by digest, as the registry does. */
export async function putBlobs(nc: NatsConnection, blobs: (string | Uint8Array)[]): Promise<void> {
  const os = await new Objm(nc).create(MODULE_BUCKET);
  for (const b of blobs) {
    const bytes = typeof b === 'string' ? new TextEncoder().encode(b) : b;
    await os.putBlob({ name: digestOf(bytes) }, bytes);
  }
}

/** The orchestrator's side for one node: sends commands, collects reports. */
export class FakeOrchestrator {
  readonly votes: VoteReport[] = [];
  readonly progress: ProgressReport[] = [];
  readonly hellos: HelloReport[] = [];

  constructor(
    private readonly nc: NatsConnection,
    readonly nodeId: string,
  ) {
    nc.subscribe(subjects.agent(nodeId, 'vote'), { callback: (_e, m) => void this.votes.push(decode(VoteReport, m.data)) });
    nc.subscribe(subjects.agent(nodeId, 'progress'), { callback: (_e, m) => void this.progress.push(decode(ProgressReport, m.data)) });
    nc.subscribe(subjects.agent(nodeId, 'hello'), { callback: (_e, m) => void this.hellos.push(decode(HelloReport, m.data)) });
  }

  propose(rolloutId: string, manifests: PackageManifest[], extra: Partial<ProposeCommand> = {}, attempt = 0): void {
    this.nc.publish(subjects.node(this.nodeId, 'propose'), encode({ rolloutId, attempt, nodeId: this.nodeId, packages: manifests.map(selectedOf), voteTimeoutMs: 10_000, ...extra }));
  }

  commit(rolloutId: string, packages: { manifest: PackageManifest; signature?: Signature }[], extra: Partial<CommitCommand> = {}, attempt = 0): void {
    this.nc.publish(subjects.node(this.nodeId, 'commit'), encode({ rolloutId, attempt, nodeId: this.nodeId, packages, changeoverTimeoutMs: 30_000, ...extra }));
  }

  regress(rolloutId: string, to: RegressCommand['to'], attempt = 0): void {
    this.nc.publish(subjects.node(this.nodeId, 'regress'), encode({ rolloutId, attempt, nodeId: this.nodeId, to, reason: 'test' }));
  }

  vote(rolloutId: string, attempt = 0): Promise<VoteReport> {
    return waitFor(`vote on ${rolloutId}`, () => this.votes.find((v) => v.rolloutId === rolloutId && v.attempt === attempt), { timeoutMs: 30_000 });
  }

  /** The terminal report of a rollout (completed, failed, regressed, aborted). */
  final(rolloutId: string, attempt = 0): Promise<ProgressReport> {
    return waitFor(`end of ${rolloutId}`, () => this.progress.find((p) => p.rolloutId === rolloutId && p.attempt === attempt && ['completed', 'failed', 'regressed', 'aborted'].includes(p.phase)), { timeoutMs: 60_000 });
  }
}

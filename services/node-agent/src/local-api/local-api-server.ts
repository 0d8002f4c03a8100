import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { existsSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { AnswerRequest, CREDENTIAL_HEADERS, LOCAL_API_PATHS, RegisterRequest, type AgentEvent, type EventKind } from '@changeover/agent-sdk';
import { ChangeoverError, HTTP_STATUS, isChangeoverError, parse } from '@changeover/contracts';
import type { Counters, EventPayload, Log } from '../core/ports.js';
import type { GroupRouter } from '../groups/group-routes.js';

interface Registration {
  handles: Set<EventKind>;
  queue: AgentEvent[];
  waiter?: (events: AgentEvent[]) => void;
}

type Answer = AnswerRequest['answer'];

const digest = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();
/** Compared against when the claimed id has no credential, so a refusal takes as long either way. */
const NO_CREDENTIAL = digest(randomBytes(32).toString('base64url'));

/**
 * The agent's local API for module processes (design §8): HTTP over a Unix socket. A process
 * registers, long-polls GET /v1/events and answers each event; the agent awaits the answer.
 * Room is left under /v1/groups for group membership.
 */
export class LocalApiServer {
  private server?: Server;
  private readonly processes = new Map<string, Registration>();
  private readonly pending = new Map<string, { processId: string; resolve: (a: Answer) => void }>();
  /** SHA-256 of each process's credential, by the process id it was issued for. */
  private readonly credentials = new Map<string, Buffer>();
  /** Group membership under /v1/groups, when the agent runs groups. */
  groups?: { route: GroupRouter; processGone(processId: string): void };

  constructor(
    readonly socketPath: string,
    private readonly counters: Counters,
    private readonly log: Log,
  ) {}

  async start(): Promise<void> {
    // A socket file left by a crashed agent would make listen fail.
    if (existsSync(this.socketPath)) unlinkSync(this.socketPath);
    this.server = createServer((req, res) => void this.route(req, res));
    await new Promise<void>((resolve, reject) => this.server!.once('error', reject).listen(this.socketPath, () => resolve()));
  }

  /** True when the process registered and said it answers this kind of event. */
  handles(processId: string, kind: EventKind): boolean {
    return this.processes.get(processId)?.handles.has(kind) ?? false;
  }

  /** Queues an event for the process and resolves with its answer (the caller applies the deadline). */
  ask(processId: string, event: EventPayload): Promise<Answer> {
    const reg = this.processes.get(processId);
    if (!reg) return Promise.reject(new ChangeoverError('NOT_FOUND', `process ${processId} is not registered`));
    const full = { ...event, id: randomUUID() } as AgentEvent;
    return new Promise<Answer>((resolve) => {
      this.pending.set(full.id, { processId, resolve });
      reg.queue.push(full);
      this.flush(reg);
    });
  }

  /**
   * A fresh random credential for the process about to be started under this id (given to it in
   * its environment). Only requests carrying it may speak as that process id.
   */
  issueCredential(processId: string): string {
    const token = randomBytes(32).toString('base64url');
    this.credentials.set(processId, digest(token));
    return token;
  }

  /** Accepts again the credential of a process started by an earlier agent run (re-adopted after an upgrade). */
  adoptCredential(processId: string, token: string): void {
    this.credentials.set(processId, digest(token));
  }

  /** Drops a stopped process's credential, unless a newer process already holds the id. */
  revokeCredential(processId: string, token: string): void {
    const held = this.credentials.get(processId);
    if (held && timingSafeEqual(held, digest(token))) this.credentials.delete(processId);
  }

  /** Forgets a process that stopped. */
  forget(processId: string): void {
    const reg = this.processes.get(processId);
    reg?.waiter?.([]);
    this.processes.delete(processId);
    this.groups?.processGone(processId);
    for (const [id, p] of this.pending) if (p.processId === processId) this.pending.delete(id);
  }

  private flush(reg: Registration): void {
    if (!reg.waiter || !reg.queue.length) return;
    const w = reg.waiter;
    reg.waiter = undefined;
    w(reg.queue.splice(0, 100));
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let caller: string | undefined;
    try {
      const url = new URL(req.url ?? '/', 'http://agent');
      caller = this.authenticate(req);
      const speaksFor = (claimed: string | null | undefined): void => {
        if (claimed !== undefined && claimed !== null && claimed !== caller) throw new ChangeoverError('FORBIDDEN', `process ${caller} cannot speak for process ${claimed}`, { reason: 'other-process' });
      };
      speaksFor(url.searchParams.get('processId'));
      const body = async (): Promise<unknown> => {
        const json = await readJson(req);
        const claimed = json && typeof json === 'object' ? (json as { processId?: unknown }).processId : undefined;
        if (typeof claimed === 'string') speaksFor(claimed);
        return json;
      };
      if (req.method === 'POST' && url.pathname === LOCAL_API_PATHS.register) {
        const registration = parse(RegisterRequest, await body(), 'registration');
        const prev = this.processes.get(registration.processId);
        this.processes.set(registration.processId, { handles: new Set(registration.handles), queue: prev?.queue ?? [] });
        prev?.waiter?.([]);
        this.log.info('process registered', { processId: registration.processId, handles: registration.handles });
        return send(res, 200, { processId: registration.processId });
      }
      if (req.method === 'GET' && url.pathname === LOCAL_API_PATHS.events) {
        const reg = this.processes.get(url.searchParams.get('processId') ?? '');
        if (!reg) throw new ChangeoverError('NOT_FOUND', 'process not registered (register first)');
        const waitMs = Math.min(Math.max(Number(url.searchParams.get('waitMs') ?? 20_000) || 0, 0), 60_000);
        const events = await new Promise<AgentEvent[]>((resolve) => {
          reg.waiter?.([]);
          const timer = setTimeout(() => {
            if (reg.waiter === done) reg.waiter = undefined;
            resolve([]);
          }, waitMs);
          const done = (ev: AgentEvent[]) => {
            clearTimeout(timer);
            resolve(ev);
          };
          reg.waiter = done;
          req.once('close', () => {
            if (reg.waiter === done) reg.waiter = undefined;
          });
          this.flush(reg);
        });
        if (res.destroyed) {
          // The process went away mid-poll: its events go back in the queue.
          this.processes.get(url.searchParams.get('processId') ?? '')?.queue.unshift(...events);
          return;
        }
        return send(res, 200, { events });
      }
      if (this.groups && url.pathname.startsWith('/v1/groups/')) return send(res, 200, await this.groups.route(req.method ?? 'GET', url, body));
      const m = /^\/v1\/events\/([^/]+)\/answer$/.exec(url.pathname);
      if (req.method === 'POST' && m) {
        const answer = parse(AnswerRequest, await body(), 'answer');
        const id = decodeURIComponent(m[1]!);
        const p = this.pending.get(id);
        if (!p || p.processId !== answer.processId) throw new ChangeoverError('NOT_FOUND', `no pending event ${id} for ${answer.processId}`);
        this.pending.delete(id);
        p.resolve(answer.answer);
        return send(res, 200, { ok: true });
      }
      throw new ChangeoverError('NOT_FOUND', `no route ${req.method} ${url.pathname}`);
    } catch (e) {
      const err = isChangeoverError(e) ? e : new ChangeoverError('INTERNAL', e instanceof Error ? e.message : String(e));
      this.counters.inc('agent_local_api_rejected_total', { code: err.code });
      if (err.code === 'UNAUTHENTICATED' || err.code === 'FORBIDDEN') {
        const reason = String(err.details?.['reason'] ?? err.code);
        this.counters.inc('agent_local_api_refused_total', { reason });
        this.log.warn('local API request refused', { reason, claimedProcessId: header(req, CREDENTIAL_HEADERS.processId), caller, path: req.url?.split('?')[0] });
      }
      if (!res.headersSent && !res.destroyed) send(res, HTTP_STATUS[err.code], err.toBody());
    }
  }

  /**
   * The process id a request may speak for: the one named in its headers, when its token is the
   * credential issued for that id (compared in constant time, over digests of equal length).
   */
  private authenticate(req: IncomingMessage): string {
    const processId = header(req, CREDENTIAL_HEADERS.processId);
    const token = header(req, CREDENTIAL_HEADERS.token);
    if (!processId || !token) throw new ChangeoverError('UNAUTHENTICATED', `local API requests carry ${CREDENTIAL_HEADERS.processId} and ${CREDENTIAL_HEADERS.token} (the SDK sends them)`, { reason: 'no-credential' });
    const held = this.credentials.get(processId);
    const match = timingSafeEqual(held ?? NO_CREDENTIAL, digest(token));
    if (!held || !match) throw new ChangeoverError('UNAUTHENTICATED', `wrong credential for process ${processId}`, { reason: 'wrong-credential' });
    return processId;
  }

  async stop(): Promise<void> {
    for (const reg of this.processes.values()) reg.waiter?.([]);
    const closed = new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server?.closeAllConnections();
    await closed;
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return (Array.isArray(v) ? v[0] : v) || undefined;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > 1_000_000) throw new ChangeoverError('TOO_LARGE', 'request body over 1 MB');
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
  } catch {
    throw new ChangeoverError('VALIDATION_FAILED', 'body is not JSON');
  }
}

import { randomUUID } from 'node:crypto';
import { existsSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { AnswerRequest, LOCAL_API_PATHS, RegisterRequest, type AgentEvent, type EventKind } from '@changeover/agent-sdk';
import { ChangeoverError, HTTP_STATUS, isChangeoverError, parse } from '@changeover/contracts';
import type { Counters, EventPayload, Log } from '../core/ports.js';
import type { GroupRouter } from '../groups/group-routes.js';

interface Registration {
  handles: Set<EventKind>;
  queue: AgentEvent[];
  waiter?: (events: AgentEvent[]) => void;
}

type Answer = AnswerRequest['answer'];

/**
 * The agent's local API for module processes (design §8): HTTP over a Unix socket. A process
 * registers, long-polls GET /v1/events and answers each event; the agent awaits the answer.
 * Room is left under /v1/groups for group membership.
 */
export class LocalApiServer {
  private server?: Server;
  private readonly processes = new Map<string, Registration>();
  private readonly pending = new Map<string, { processId: string; resolve: (a: Answer) => void }>();
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
    try {
      const url = new URL(req.url ?? '/', 'http://agent');
      if (req.method === 'POST' && url.pathname === LOCAL_API_PATHS.register) {
        const body = parse(RegisterRequest, await readJson(req), 'registration');
        const prev = this.processes.get(body.processId);
        this.processes.set(body.processId, { handles: new Set(body.handles), queue: prev?.queue ?? [] });
        prev?.waiter?.([]);
        this.log.info('process registered', { processId: body.processId, handles: body.handles });
        return send(res, 200, { processId: body.processId });
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
      if (this.groups && url.pathname.startsWith('/v1/groups/')) return send(res, 200, await this.groups.route(req.method ?? 'GET', url, () => readJson(req)));
      const m = /^\/v1\/events\/([^/]+)\/answer$/.exec(url.pathname);
      if (req.method === 'POST' && m) {
        const body = parse(AnswerRequest, await readJson(req), 'answer');
        const id = decodeURIComponent(m[1]!);
        const p = this.pending.get(id);
        if (!p || p.processId !== body.processId) throw new ChangeoverError('NOT_FOUND', `no pending event ${id} for ${body.processId}`);
        this.pending.delete(id);
        p.resolve(body.answer);
        return send(res, 200, { ok: true });
      }
      throw new ChangeoverError('NOT_FOUND', `no route ${req.method} ${url.pathname}`);
    } catch (e) {
      const err = isChangeoverError(e) ? e : new ChangeoverError('INTERNAL', e instanceof Error ? e.message : String(e));
      this.counters.inc('agent_local_api_rejected_total', { code: err.code });
      if (!res.headersSent && !res.destroyed) send(res, HTTP_STATUS[err.code], err.toBody());
    }
  }

  async stop(): Promise<void> {
    for (const reg of this.processes.values()) reg.waiter?.([]);
    const closed = new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server?.closeAllConnections();
    await closed;
  }
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

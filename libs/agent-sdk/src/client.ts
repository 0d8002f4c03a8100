import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { AGENT_ENV, CREDENTIAL_HEADERS, EventsReply, LOCAL_API_PATHS, type AgentEvent, type ProcessCredential, type AnswerRequest, type EvaluateAnswer, type EventKind, type PrepareAnswer } from './local-api.js';

type Of<K extends EventKind> = Extract<AgentEvent, { kind: K }>;

export interface AgentClientOptions {
  /** Default: env CHANGEOVER_AGENT_SOCKET. */
  socketPath?: string;
  /** Default: env CHANGEOVER_PROCESS_ID. */
  processId?: string;
  /** Default: env CHANGEOVER_PROCESS_TOKEN (the credential the agent gave this process). */
  token?: string;
  /** How long one long-poll waits for events. */
  pollWaitMs?: number;
}

/** The credential the agent put in this process's environment, or the one given. */
export function processCredential(opts: { processId?: string; token?: string }): ProcessCredential {
  const processId = opts.processId ?? process.env[AGENT_ENV.processId];
  const file = process.env[AGENT_ENV.tokenFile];
  const token = opts.token ?? process.env[AGENT_ENV.token] ?? (file ? readFileSync(file, 'utf8').trim() : undefined);
  if (!processId || !token) throw new Error(`agent-sdk: ${AGENT_ENV.processId} and ${AGENT_ENV.token} (or ${AGENT_ENV.tokenFile}) must be set (the agent sets them for the processes it starts)`);
  return { processId, token };
}

/** One JSON request to the agent's local API over its Unix socket, on behalf of `credential`. */
export function call(socketPath: string, credential: ProcessCredential, method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string | number> = { [CREDENTIAL_HEADERS.processId]: credential.processId, [CREDENTIAL_HEADERS.token]: credential.token };
    if (payload) Object.assign(headers, { 'content-type': 'application/json', 'content-length': payload.length });
    const req = request({ socketPath, method, path, headers, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : null });
        } catch {
          reject(new Error(`agent answered ${res.statusCode} with non-JSON`));
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('agent did not answer in time')));
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * A module process's side of the node agent (design §8): answer evaluate (vote), prepare (barrier)
 * and learn of changeovers. Events are long-polled over the agent's Unix socket; the client
 * re-registers by itself when the agent restarts. Group membership will be added beside these.
 */
export class AgentClient {
  readonly socketPath: string;
  readonly processId: string;
  private readonly credential: ProcessCredential;
  private evaluateFn?: (e: Of<'evaluate'>) => EvaluateAnswer | Promise<EvaluateAnswer>;
  private prepareFn?: (e: Of<'prepare'>) => PrepareAnswer | boolean | Promise<PrepareAnswer | boolean>;
  private changedFn?: (e: Of<'changed'>) => void | Promise<void>;
  private running = false;
  private loop?: Promise<void>;

  constructor(opts: AgentClientOptions = {}) {
    const socketPath = opts.socketPath ?? process.env[AGENT_ENV.socket];
    if (!socketPath) throw new Error(`agent-sdk: ${AGENT_ENV.socket} must be set (the agent sets it for the processes it starts)`);
    this.credential = processCredential(opts);
    this.socketPath = socketPath;
    this.processId = this.credential.processId;
    this.pollWaitMs = opts.pollWaitMs ?? 20_000;
  }

  private readonly pollWaitMs: number;

  /** Answer accept or veto (with a typed reason) when an update touches this process. */
  onEvaluate(fn: (e: Of<'evaluate'>) => EvaluateAnswer | Promise<EvaluateAnswer>): this {
    this.evaluateFn = fn;
    return this;
  }

  /** Get ready for the changeover (finish or pause work); return true or { ready: true }. */
  onPrepare(fn: (e: Of<'prepare'>) => PrepareAnswer | boolean | Promise<PrepareAnswer | boolean>): this {
    this.prepareFn = fn;
    return this;
  }

  /** Told after the switch; `restart` says the agent will restart this process. */
  onChanged(fn: (e: Of<'changed'>) => void | Promise<void>): this {
    this.changedFn = fn;
    return this;
  }

  private handles(): EventKind[] {
    return [...(this.evaluateFn ? ['evaluate' as const] : []), ...(this.prepareFn ? ['prepare' as const] : []), ...(this.changedFn ? ['changed' as const] : [])];
  }

  /** Registers with the agent and starts taking events. Resolves once the agent knows this process. */
  async register(): Promise<void> {
    await this.registerOnce();
    if (this.running) return;
    this.running = true;
    this.loop = this.poll();
  }

  private async registerOnce(): Promise<void> {
    const res = await call(this.socketPath, this.credential, 'POST', LOCAL_API_PATHS.register, { processId: this.processId, handles: this.handles() });
    if (res.status !== 200) throw new Error(`agent refused registration: ${res.status} ${JSON.stringify(res.json)}`);
  }

  private async poll(): Promise<void> {
    let backoff = 100;
    while (this.running) {
      try {
        const res = await call(this.socketPath, this.credential, 'GET', `${LOCAL_API_PATHS.events}?processId=${encodeURIComponent(this.processId)}&waitMs=${this.pollWaitMs}`, undefined, this.pollWaitMs + 10_000);
        if (res.status === 404) {
          // The agent restarted and forgot us.
          await this.registerOnce();
          continue;
        }
        if (res.status !== 200) throw new Error(`events: ${res.status}`);
        backoff = 100;
        const { events } = EventsReply.parse(res.json);
        // Not awaited: a handler that never returns (the agent answers for it at its deadline) must not stop
        // this process from taking the next events.
        for (const e of events) void this.dispatch(e);
      } catch {
        if (!this.running) return;
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 2000);
      }
    }
  }

  private async dispatch(e: AgentEvent): Promise<void> {
    let answer: AnswerRequest['answer'];
    try {
      switch (e.kind) {
        case 'evaluate':
          answer = this.evaluateFn ? await this.evaluateFn(e) : { decision: 'accept' };
          break;
        case 'prepare': {
          const r = this.prepareFn ? await this.prepareFn(e) : true;
          answer = typeof r === 'boolean' ? { ready: r, message: r ? '' : 'not ready' } : r;
          break;
        }
        case 'changed':
          if (this.changedFn) await this.changedFn(e);
          answer = { ack: true };
          break;
      }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      answer = e.kind === 'evaluate' ? { decision: 'veto', reason: 'CUSTOM', message } : e.kind === 'prepare' ? { ready: false, message } : { ack: true };
    }
    await call(this.socketPath, this.credential, 'POST', LOCAL_API_PATHS.answer(e.id), { processId: this.processId, answer }).catch(() => undefined);
  }

  /** Stops taking events (the agent then answers for this process: no answer → NO_ANSWER). */
  async close(): Promise<void> {
    this.running = false;
    await Promise.race([this.loop, new Promise((r) => setTimeout(r, 100))]);
  }
}

/** Registers this process with its agent: `await register({ onEvaluate, onPrepare, onChanged })`. */
export async function register(handlers: {
  onEvaluate?: (e: Of<'evaluate'>) => EvaluateAnswer | Promise<EvaluateAnswer>;
  onPrepare?: (e: Of<'prepare'>) => PrepareAnswer | boolean | Promise<PrepareAnswer | boolean>;
  onChanged?: (e: Of<'changed'>) => void | Promise<void>;
}, opts: AgentClientOptions = {}): Promise<AgentClient> {
  const client = new AgentClient(opts);
  if (handlers.onEvaluate) client.onEvaluate(handlers.onEvaluate);
  if (handlers.onPrepare) client.onPrepare(handlers.onPrepare);
  if (handlers.onChanged) client.onChanged(handlers.onChanged);
  await client.register();
  return client;
}

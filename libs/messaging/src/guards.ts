import type { NatsConnection } from '@nats-io/transport-node';
import type { z } from 'zod';
import { ChangeoverError } from '@changeover/contracts';

const TOKEN = /^[A-Za-z0-9_-]+$/;

/** Throws VALIDATION_FAILED unless `subject` is a NATS subject (wildcards only where allowed). */
export function assertSubject(subject: unknown, { wildcards = false, what = 'subject' }: { wildcards?: boolean; what?: string } = {}): asserts subject is string {
  if (typeof subject !== 'string' || subject.length === 0 || subject.length > 512) {
    throw new ChangeoverError('VALIDATION_FAILED', `${what} must be a non-empty string of at most 512 characters`);
  }
  const tokens = subject.split('.');
  tokens.forEach((t, i) => {
    const ok = TOKEN.test(t) || (wildcards && (t === '*' || (t === '>' && i === tokens.length - 1)));
    if (!ok) throw new ChangeoverError('VALIDATION_FAILED', `${what} ${JSON.stringify(subject.slice(0, 120))} has an invalid token ${JSON.stringify(t.slice(0, 40))}`);
  });
}

export function assertConnection(nc: unknown): asserts nc is NatsConnection {
  const c = nc as Partial<NatsConnection> | null;
  if (!c || typeof c !== 'object' || typeof c.subscribe !== 'function' || typeof c.publish !== 'function' || typeof c.request !== 'function') {
    throw new ChangeoverError('VALIDATION_FAILED', 'a NATS connection is required');
  }
  if (typeof c.isClosed === 'function' && c.isClosed()) throw new ChangeoverError('UNAVAILABLE', 'NATS connection is closed');
}

export function assertSchema(schema: unknown, what: string): asserts schema is z.ZodType {
  if (!schema || typeof (schema as z.ZodType).safeParse !== 'function') throw new ChangeoverError('VALIDATION_FAILED', `${what} must be a zod schema`);
}

/** Promises of handlers still running, so a stop can wait for them. */
export class InFlight {
  private readonly running = new Set<Promise<unknown>>();

  track(p: Promise<unknown>): void {
    this.running.add(p);
    const done = () => void this.running.delete(p);
    p.then(done, done);
  }

  get size(): number {
    return this.running.size;
  }

  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }
}

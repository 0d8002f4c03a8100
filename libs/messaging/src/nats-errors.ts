import { ClosedConnectionError, DrainingConnectionError, InvalidSubjectError, NoRespondersError, RequestError, TimeoutError, InvalidArgumentError, PermissionViolationError } from '@nats-io/transport-node';
import { ChangeoverError } from '@changeover/contracts';

/** Maps a NATS client error to the typed error of our wire; ChangeoverErrors pass through. */
export function fromNatsError(err: unknown, subject: string, timeoutMs?: number): ChangeoverError {
  if (err instanceof ChangeoverError) return err;
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : undefined;
  const s = subject.slice(0, 200);
  if (err instanceof TimeoutError || cause instanceof TimeoutError) {
    return new ChangeoverError('TIMEOUT', `no reply on ${s} within ${timeoutMs ?? '?'} ms`, { subject: s });
  }
  if (err instanceof NoRespondersError || cause instanceof NoRespondersError || (err instanceof RequestError && err.isNoResponders())) {
    return new ChangeoverError('UNAVAILABLE', `no responders on ${s}`, { subject: s });
  }
  if (err instanceof ClosedConnectionError || err instanceof DrainingConnectionError) {
    return new ChangeoverError('UNAVAILABLE', `NATS connection is ${err instanceof ClosedConnectionError ? 'closed' : 'draining'}`, { subject: s });
  }
  if (err instanceof PermissionViolationError) return new ChangeoverError('FORBIDDEN', `not permitted to ${err.operation} on ${s}`, { subject: s });
  if (err instanceof InvalidSubjectError) return new ChangeoverError('VALIDATION_FAILED', `invalid subject ${JSON.stringify(s)}`, { subject: s });
  if (err instanceof InvalidArgumentError && /max_payload|payload/i.test(err.message)) return new ChangeoverError('TOO_LARGE', `message for ${s} exceeds the server's max payload`, { subject: s });
  if (err instanceof InvalidArgumentError) return new ChangeoverError('VALIDATION_FAILED', `${err.message} (${s})`, { subject: s });
  return new ChangeoverError('UNAVAILABLE', `NATS error on ${s}: ${err instanceof Error ? err.message : String(err)}`.slice(0, 1000), { subject: s });
}

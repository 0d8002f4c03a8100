import { z } from 'zod';

/** Every error the system puts on the wire has one of these codes. */
export const ERROR_CODES = [
  'VALIDATION_FAILED',
  'INVALID_ID',
  'NOT_FOUND',
  'CONFLICT',
  'VERSION_CONFLICT',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'TOO_LARGE',
  'RATE_LIMITED',
  'TIMEOUT',
  'UNAVAILABLE',
  'DIGEST_MISMATCH',
  'SIGNATURE_INVALID',
  'UNTRUSTED_KEY',
  'PROCESSOR_UNSUPPORTED',
  'INVALID_STATE',
  'NOT_IN_ROLLOUT',
  'NODE_NOT_ACTIVE',
  'GROUP_PARTITIONED',
  'NODE_INCAPABLE',
  'VERSION_UNSUPPORTED',
  'FEATURE_NOT_ACTIVE',
  'INTERNAL',
] as const;
export const ErrorCode = z.enum(ERROR_CODES);
export type ErrorCode = z.infer<typeof ErrorCode>;

/** The one error shape of every REST answer and every NATS reply that failed. */
export const ErrorBody = z.strictObject({
  code: ErrorCode,
  message: z.string().max(4096),
  details: z.record(z.string(), z.unknown()).optional(),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

/** A typed error: domain code plus a human message. Transports map the code, never the class. */
export class ChangeoverError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'ChangeoverError';
  }

  toBody(): ErrorBody {
    return this.details ? { code: this.code, message: this.message, details: this.details } : { code: this.code, message: this.message };
  }

  static fromBody(body: ErrorBody): ChangeoverError {
    return new ChangeoverError(body.code, body.message, body.details);
  }
}

export function isChangeoverError(e: unknown, code?: ErrorCode): e is ChangeoverError {
  return e instanceof ChangeoverError && (code === undefined || e.code === code);
}

/** HTTP status for an error code; one table for every REST adapter. */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  VALIDATION_FAILED: 400,
  INVALID_ID: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  VERSION_CONFLICT: 409,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  TOO_LARGE: 413,
  RATE_LIMITED: 429,
  TIMEOUT: 504,
  UNAVAILABLE: 503,
  DIGEST_MISMATCH: 422,
  SIGNATURE_INVALID: 422,
  UNTRUSTED_KEY: 422,
  PROCESSOR_UNSUPPORTED: 422,
  INVALID_STATE: 409,
  NOT_IN_ROLLOUT: 409,
  NODE_NOT_ACTIVE: 409,
  GROUP_PARTITIONED: 409,
  NODE_INCAPABLE: 409,
  VERSION_UNSUPPORTED: 409,
  FEATURE_NOT_ACTIVE: 409,
  INTERNAL: 500,
};

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Tokens are `chg_` + 32 random bytes in base64url; only their SHA-256 is stored. */
export const TOKEN_PATTERN = /^chg_[A-Za-z0-9_-]{43}$/;

/** A fresh random API token (shown once, never stored). */
export function generateToken(): string {
  return `chg_${randomBytes(32).toString('base64url')}`;
}

/** SHA-256 of a token, hex: what the database keeps. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Constant-time comparison of two hex hashes of the same length. */
export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

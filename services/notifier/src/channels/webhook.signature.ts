import { createHmac, timingSafeEqual } from 'node:crypto';

/** `v1=<hex hmac-sha256(secret, timestamp + "." + body)>`: the timestamp is signed so a replay can be refused. */
export function signWebhook(secret: string, timestamp: string, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** What a receiver does: recompute, compare in constant time, refuse stale timestamps. */
export function verifyWebhook(secret: string, timestamp: string, body: string, signature: string, { nowSeconds = Math.floor(Date.now() / 1000), toleranceSeconds = 300 } = {}): boolean {
  const ts = Number(timestamp);
  if (!Number.isInteger(ts) || Math.abs(nowSeconds - ts) > toleranceSeconds) return false;
  const expected = Buffer.from(signWebhook(secret, timestamp, body));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

import { createHmac } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { signWebhook, verifyWebhook } from './webhook.signature.js';

describe('webhook signature', () => {
  const secret = 'a-secret-of-sixteen+';
  const body = '{"id":"e1"}';

  it('is v1= hex HMAC-SHA256 over "timestamp.body", as the README tells receivers', () => {
    const expected = createHmac('sha256', secret).update(`1700000000.${body}`).digest('hex');
    expect(signWebhook(secret, '1700000000', body)).toBe(`v1=${expected}`);
  });

  it('verifies a fresh signature and refuses a changed body, a wrong secret or a stale timestamp', () => {
    const sig = signWebhook(secret, '1700000000', body);
    expect(verifyWebhook(secret, '1700000000', body, sig, { nowSeconds: 1700000100 })).toBe(true);
    expect(verifyWebhook(secret, '1700000000', body + ' ', sig, { nowSeconds: 1700000100 })).toBe(false);
    expect(verifyWebhook('another-secret-123', '1700000000', body, sig, { nowSeconds: 1700000100 })).toBe(false);
    expect(verifyWebhook(secret, '1700000000', body, sig, { nowSeconds: 1700001000 })).toBe(false);
    expect(verifyWebhook(secret, 'soon', body, sig)).toBe(false);
  });
});

import { z } from 'zod';

// REST: API tokens and roles (every HTTP service answers /tokens; the tokens are shared).

export const ApiRole = z.enum(['viewer', 'operator', 'admin']);
export type ApiRole = z.infer<typeof ApiRole>;

/** A token's id: `tok_` and 16 hex characters. */
export const ApiTokenId = z.string().regex(/^tok_[0-9a-f]{16}$/, 'must be tok_ followed by 16 hex characters');

export const CreateTokenRequest = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.@-]{1,64}$/, 'must match [A-Za-z0-9_.@-]{1,64}'),
  role: ApiRole,
});
export type CreateTokenRequest = z.infer<typeof CreateTokenRequest>;

/** A token as listed: never its secret. */
export const ApiTokenRecord = z.strictObject({
  tokenId: ApiTokenId,
  name: z.string(),
  role: ApiRole,
  createdAt: z.string(),
  createdBy: z.string(),
  revokedAt: z.string().nullable(),
  revokedBy: z.string().nullable(),
});
export type ApiTokenRecord = z.infer<typeof ApiTokenRecord>;

/** The answer to a creation: the only time the secret is shown. */
export const CreatedApiToken = ApiTokenRecord.extend({ token: z.string() });
export type CreatedApiToken = z.infer<typeof CreatedApiToken>;

export const ApiTokenList = z.strictObject({ tokens: z.array(ApiTokenRecord) });
export type ApiTokenList = z.infer<typeof ApiTokenList>;

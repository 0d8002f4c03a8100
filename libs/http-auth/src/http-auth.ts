import type { INestApplication } from '@nestjs/common';
import { loadAuthConfig, type AuthConfig } from './auth.config.js';
import { migrateAuth } from './auth.migration.js';
import { Authenticator } from './authenticator.js';
import { AuditInterceptor, AuthGuard, TokensModule } from './nest-auth.js';
import { TokenStore } from './token-store.js';

/** What a service wires: the token store, the authenticator, and the Nest module and global enhancers. */
export interface HttpAuth {
  config: AuthConfig;
  store: TokenStore;
  authenticator: Authenticator;
  /** The /tokens endpoints: add to the service's HTTP module imports. */
  tokensModule: ReturnType<typeof TokensModule.with>;
  /** Installs the global guard and the audit interceptor on the app. */
  install(app: INestApplication): void;
  close(): Promise<void>;
}

/** Migrates the auth schema and opens the token store for `service` (its name in the audit log). */
export async function openHttpAuth(opts: { service: string; databaseUrl: string; config: AuthConfig; onAuditError?: (err: unknown) => void; warn?: (message: string) => void }): Promise<HttpAuth> {
  await migrateAuth(opts.databaseUrl);
  if (!opts.config.enabled) opts.warn?.('CHANGEOVER_AUTH=off: every caller of the REST API is an anonymous admin');
  else if (!opts.config.adminToken) opts.warn?.('no CHANGEOVER_ADMIN_TOKEN: only API tokens already in the database are accepted');
  const store = TokenStore.open(opts.databaseUrl, { statementTimeoutMs: opts.config.statementTimeoutMs });
  const authenticator = new Authenticator(opts.config, store);
  return {
    config: opts.config,
    store,
    authenticator,
    tokensModule: TokensModule.with(store),
    install(app) {
      app.useGlobalGuards(new AuthGuard(authenticator));
      app.useGlobalInterceptors(new AuditInterceptor(opts.service, store, opts.onAuditError ?? (() => undefined)));
    },
    close: () => store.close(),
  };
}

export { loadAuthConfig };

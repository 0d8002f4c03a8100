import 'reflect-metadata';
import { Body, Controller, createParamDecorator, Delete, Get, HttpCode, Inject, Module, Param, Post, SetMetadata, type CallHandler, type CanActivate, type DynamicModule, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Observable } from 'rxjs';
import { ChangeoverError, CreateTokenRequest, HTTP_STATUS, isChangeoverError, parse, type ApiTokenList, type ApiTokenRecord, type CreatedApiToken } from '@changeover/contracts';
import type { Authenticator } from './authenticator.js';
import { runAs } from './audit-context.js';
import type { Principal, Role } from './roles.js';
import type { AuditEntry } from './token-store.js';

const ROLE_KEY = 'changeover:role';
type RouteRole = Role | 'public';

/** The least role a route needs; routes without one (and without @Public) are refused. */
export const Roles = (role: Role) => SetMetadata(ROLE_KEY, role);
/** Open to anyone (health, metrics, the OpenAPI document). */
export const Public = () => SetMetadata(ROLE_KEY, 'public');

type AuthedRequest = IncomingMessage & { principal?: Principal; originalUrl?: string };

/** The caller of this request (set by the AuthGuard). */
export const Caller = createParamDecorator((_data: unknown, ctx: ExecutionContext): Principal => {
  const p = ctx.switchToHttp().getRequest<AuthedRequest>().principal;
  if (!p) throw new ChangeoverError('INTERNAL', 'no principal on the request: is the AuthGuard installed?');
  return p;
});

function roleOf(ctx: ExecutionContext): RouteRole | undefined {
  return (Reflect.getMetadata(ROLE_KEY, ctx.getHandler()) ?? Reflect.getMetadata(ROLE_KEY, ctx.getClass())) as RouteRole | undefined;
}

/** Global guard: a bearer token holding the route's role, else 401 / 403 (typed). */
export class AuthGuard implements CanActivate {
  constructor(private readonly auth: Authenticator) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const role = roleOf(ctx);
    const req = ctx.switchToHttp().getRequest<AuthedRequest>();
    if (role === 'public') return true;
    // A route nobody gave a role is closed, so a forgotten decorator never opens an endpoint.
    if (role === undefined) throw new ChangeoverError('FORBIDDEN', 'this route declares no role');
    req.principal = await this.auth.authorize(req.headers.authorization, role);
    return true;
  }
}

export interface AuditSink {
  audit(e: AuditEntry): Promise<void>;
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Global interceptor: the handler runs with the caller in context (events appended inside carry
 * its audit metadata), and every mutating request is written to the audit log with its outcome.
 */
export class AuditInterceptor implements NestInterceptor {
  constructor(
    private readonly service: string,
    private readonly sink: AuditSink,
    private readonly onError: (err: unknown) => void,
  ) {}

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    const req = ctx.switchToHttp().getRequest<AuthedRequest>();
    const res = ctx.switchToHttp().getResponse<ServerResponse>();
    const principal = req.principal;
    if (!principal) return next.handle();
    const method = (req.method ?? 'GET').toUpperCase();
    const write = (status: number, errorCode?: string) => {
      if (!MUTATING.has(method)) return;
      this.sink.audit({ service: this.service, principal, method, path: (req.originalUrl ?? req.url ?? '').split('?')[0]!, status, ...(errorCode ? { errorCode } : {}) }).catch(this.onError);
    };
    return new Observable((sub) =>
      runAs(principal, () =>
        next.handle().subscribe({
          next: (v) => sub.next(v),
          error: (e: unknown) => {
            write(isChangeoverError(e) ? HTTP_STATUS[e.code] : 500, isChangeoverError(e) ? e.code : 'INTERNAL');
            sub.error(e);
          },
          complete: () => {
            write(res.statusCode || 200);
            sub.complete();
          },
        }),
      ),
    );
  }
}

/** Token management as the services store it. */
export interface TokenAdmin {
  create(name: string, role: Role, createdBy: string): Promise<CreatedApiToken>;
  list(): Promise<ApiTokenRecord[]>;
  revoke(tokenId: string, by: string): Promise<ApiTokenRecord>;
}

export const TOKEN_ADMIN = 'CHANGEOVER_TOKEN_ADMIN';

/** POST/GET /tokens and DELETE /tokens/:id, admin only; the secret is in the creation answer alone. */
@Controller('tokens')
@Roles('admin')
export class TokensController {
  constructor(@Inject(TOKEN_ADMIN) private readonly tokens: TokenAdmin) {}

  @Post() @HttpCode(201) create(@Body() body: unknown, @Caller() p: Principal): Promise<CreatedApiToken> { const r = parse(CreateTokenRequest, body ?? {}, 'token request'); return this.tokens.create(r.name, r.role, p.name); }
  @Get() async list(): Promise<ApiTokenList> { return { tokens: await this.tokens.list() }; }
  @Delete(':id') revoke(@Param('id') id: string, @Caller() p: Principal): Promise<ApiTokenRecord> { return this.tokens.revoke(id, p.name); }
}

@Module({})
export class TokensModule {
  /** The /tokens endpoints over `tokens`; import it into a service's HTTP module. */
  static with(tokens: TokenAdmin): DynamicModule {
    return { module: TokensModule, controllers: [TokensController], providers: [{ provide: TOKEN_ADMIN, useValue: tokens }] };
  }
}

/**
 * Express middleware run before any body parser: a request carrying a body must present a valid
 * token first, so nobody unauthenticated can make the service read a large body. Roles are still
 * checked per route by the AuthGuard.
 */
export function authenticateBeforeBody(auth: Authenticator, refuse: (res: ServerResponse, err: unknown) => void) {
  return (req: AuthedRequest, res: ServerResponse, next: () => void): void => {
    const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
    if (!hasBody || !auth.enabled) return next();
    auth.authenticate(req.headers.authorization).then(
      () => next(),
      (err: unknown) => refuse(res, err),
    );
  };
}

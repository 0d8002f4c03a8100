import 'reflect-metadata';
import { Module, type DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { authenticateBeforeBody, type HttpAuth } from '@changeover/http-auth';
import type { RateLimiter } from '@changeover/messaging';
import type { Logger } from '../observability.js';
import type { RegistryDomain } from '../registry.domain.js';
import { ClassesController } from './classes.controller.js';
import { ErrorFilter, jsonBodyMiddleware, sendJson, toErrorResponse } from './http.support.js';
import { DOMAIN, ENROLL_LIMITER } from './http.tokens.js';
import { MetaController } from './meta.controller.js';
import { NodesController } from './nodes.controller.js';
import { PackagesController } from './packages.controller.js';
import { READINESS, type Readiness } from './readiness.js';
import { UpdatesController } from './updates.controller.js';

@Module({})
class RegistryHttpModule {
  static register(domain: RegistryDomain, readiness: Readiness, auth: HttpAuth, enrollLimiter: RateLimiter): DynamicModule {
    return {
      module: RegistryHttpModule,
      imports: [auth.tokensModule],
      controllers: [PackagesController, NodesController, ClassesController, UpdatesController, MetaController],
      providers: [{ provide: DOMAIN, useValue: domain }, { provide: READINESS, useValue: readiness }, { provide: ENROLL_LIMITER, useValue: enrollLimiter }],
    };
  }
}

export interface HttpServer {
  app: NestExpressApplication;
  port: number;
  close(): Promise<void>;
}

/** The REST API on NestJS/Express; JSON bodies up to the image limit (inline blobs are base64). */
export async function startHttp(domain: RegistryDomain, opts: { port: number; host: string; logger: Logger; readiness: Readiness; auth: HttpAuth; enrollLimiter: RateLimiter }): Promise<HttpServer> {
  const app = await NestFactory.create<NestExpressApplication>(RegistryHttpModule.register(domain, opts.readiness, opts.auth, opts.enrollLimiter), { logger: false, bodyParser: false, abortOnError: false });
  // Bodies can be as large as an image: no body is read before its sender has shown a valid token.
  app.use(
    authenticateBeforeBody(opts.auth.authenticator, (res, err) => {
      const { status, body } = toErrorResponse(err);
      domain.counters.inc('registry_requests_rejected_total', 1, { code: body.code });
      sendJson(res, status, body);
    }),
  );
  app.use(jsonBodyMiddleware(Math.ceil(domain.maxImageBytes * 1.4) + 1024, domain.counters));
  app.useGlobalFilters(new ErrorFilter(domain.counters, opts.logger));
  opts.auth.install(app);
  await app.listen(opts.port, opts.host);
  const address = app.getHttpServer().address() as { port: number } | string | null;
  return {
    app,
    port: typeof address === 'object' && address ? address.port : opts.port,
    close: () => app.close(),
  };
}

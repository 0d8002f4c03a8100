import 'reflect-metadata';
import { Module, type DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { Logger } from '../observability.js';
import type { RegistryDomain } from '../registry.domain.js';
import { ClassesController } from './classes.controller.js';
import { ErrorFilter, jsonBodyMiddleware } from './http.support.js';
import { DOMAIN } from './http.tokens.js';
import { MetaController } from './meta.controller.js';
import { NodesController } from './nodes.controller.js';
import { PackagesController } from './packages.controller.js';
import { READINESS, type Readiness } from './readiness.js';
import { UpdatesController } from './updates.controller.js';

@Module({})
class RegistryHttpModule {
  static register(domain: RegistryDomain, readiness: Readiness): DynamicModule {
    return {
      module: RegistryHttpModule,
      controllers: [PackagesController, NodesController, ClassesController, UpdatesController, MetaController],
      providers: [{ provide: DOMAIN, useValue: domain }, { provide: READINESS, useValue: readiness }],
    };
  }
}

export interface HttpServer {
  app: NestExpressApplication;
  port: number;
  close(): Promise<void>;
}

/** The REST API on NestJS/Express; JSON bodies up to the image limit (inline blobs are base64). */
export async function startHttp(domain: RegistryDomain, opts: { port: number; host: string; logger: Logger; readiness: Readiness }): Promise<HttpServer> {
  const app = await NestFactory.create<NestExpressApplication>(RegistryHttpModule.register(domain, opts.readiness), { logger: false, bodyParser: false, abortOnError: false });
  app.use(jsonBodyMiddleware(Math.ceil(domain.maxImageBytes * 1.4) + 1024, domain.counters));
  app.useGlobalFilters(new ErrorFilter(domain.counters, opts.logger));
  await app.listen(opts.port, opts.host);
  const address = app.getHttpServer().address() as { port: number } | string | null;
  return {
    app,
    port: typeof address === 'object' && address ? address.port : opts.port,
    close: () => app.close(),
  };
}

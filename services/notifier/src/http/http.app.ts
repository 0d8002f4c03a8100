import 'reflect-metadata';
import { Module, type DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { authenticateBeforeBody, type HttpAuth } from '@changeover/http-auth';
import { DeliveriesController } from '../delivery/deliveries.controller.js';
import { DeliveryStore } from '../delivery/delivery.store.js';
import type { Logger } from '../log.js';
import type { NotifierMetrics } from '../metrics.js';
import { SubscriptionsController } from '../subscriptions/subscriptions.controller.js';
import { SubscriptionStore } from '../subscriptions/subscription.store.js';
import { ErrorFilter, toErrorBody } from './error.filter.js';
import { METRICS_REGISTRY, OpsController, READINESS, type Readiness } from './ops.controller.js';

export interface HttpDeps {
  subscriptions: SubscriptionStore;
  deliveries: DeliveryStore;
  metrics: NotifierMetrics;
  readiness: Readiness;
  log: Logger;
  auth: HttpAuth;
  maxBodyBytes: number;
}

@Module({})
class NotifierHttpModule {
  static with(deps: HttpDeps): DynamicModule {
    return {
      module: NotifierHttpModule,
      imports: [deps.auth.tokensModule],
      controllers: [SubscriptionsController, DeliveriesController, OpsController],
      providers: [
        { provide: SubscriptionStore, useValue: deps.subscriptions },
        { provide: DeliveryStore, useValue: deps.deliveries },
        { provide: METRICS_REGISTRY, useValue: deps.metrics.registry },
        { provide: READINESS, useValue: deps.readiness },
      ],
    };
  }
}

type ErrorMiddleware = (err: unknown, req: unknown, res: { status(n: number): { json(b: unknown): void } }, next: unknown) => void;

/** The REST API on `port` (0 = any free port). */
export async function startHttp(deps: HttpDeps, port: number): Promise<{ port: number; close(): Promise<void> }> {
  const app = await NestFactory.create<NestExpressApplication>(NotifierHttpModule.with(deps), { logger: false, bodyParser: false });
  // No body is read before its sender has shown a valid token.
  app.use(
    authenticateBeforeBody(deps.auth.authenticator, (res, err) => {
      const { status, body } = toErrorBody(err);
      deps.metrics.requestErrors.inc({ code: body.code });
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    }),
  );
  app.useBodyParser('json', { limit: deps.maxBodyBytes });
  // Body-parser errors happen before any route, so the exception filter never sees them.
  // Express recognises an error handler by its four parameters.
  const bodyErrors: ErrorMiddleware = (err, _req, res, _next) => {
    const { status, body } = toErrorBody(err);
    deps.metrics.requestErrors.inc({ code: body.code });
    res.status(status).json(body);
  };
  app.use(bodyErrors);
  app.useGlobalFilters(new ErrorFilter(deps.metrics, deps.log));
  deps.auth.install(app);
  await app.listen(port, '0.0.0.0');
  const server = app.getHttpServer() as Server;
  return { port: (server.address() as AddressInfo).port, close: () => app.close() };
}

import { Controller, Get, Header, Inject, Res } from '@nestjs/common';
import { Public } from '@changeover/http-auth';
import type { Registry } from 'prom-client';
import { openApiDocument } from './openapi.js';

export const METRICS_REGISTRY = Symbol('metrics registry');
export const READINESS = Symbol('readiness');

/** Answers what each dependency looks like; ready only when every one is. */
export type Readiness = () => Promise<Record<string, boolean>>;

interface StatusResponse {
  status(code: number): { json(body: unknown): void };
}

@Controller()
@Public()
export class OpsController {
  private readonly openapi = openApiDocument();

  constructor(
    @Inject(METRICS_REGISTRY) private readonly registry: Registry,
    @Inject(READINESS) private readonly readiness: Readiness,
  ) {}

  @Get('openapi.json') document() { return this.openapi; }
  @Get('health/live') live() { return { status: 'ok' }; }
  @Get('health/ready') async ready(@Res() res: StatusResponse) {
    const checks = await this.readiness();
    res.status(Object.values(checks).every(Boolean) ? 200 : 503).json({ status: Object.values(checks).every(Boolean) ? 'ok' : 'unavailable', checks });
  }
  @Get('metrics') @Header('content-type', 'text/plain; version=0.0.4; charset=utf-8') metrics() { return this.registry.metrics(); }
}

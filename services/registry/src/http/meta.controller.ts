import type { ServerResponse } from 'node:http';
import { Controller, Get, Inject, Res } from '@nestjs/common';
import { Public } from '@changeover/http-auth';
import { registry } from '@changeover/telemetry';
import { openApiDocument } from './openapi.js';
import { READINESS, type Readiness } from './readiness.js';

@Controller()
@Public()
export class MetaController {
  constructor(@Inject(READINESS) private readonly readiness: Readiness) {}

  @Get('openapi.json')
  openapi(): Record<string, unknown> {
    return openApiDocument();
  }

  @Get('health')
  health(): { status: 'ok' } {
    return { status: 'ok' };
  }

  /** The process is up (Kubernetes restarts it when this fails). */
  @Get('health/live')
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }

  /** 200 when Postgres answers, NATS is connected and the migrations ran; else 503 naming the failed check. */
  @Get('health/ready')
  async ready(@Res() res: ServerResponse): Promise<void> {
    const checks = await this.readiness();
    const ok = Object.values(checks).every(Boolean);
    res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: ok ? 'ok' : 'unavailable', checks }));
  }

  @Get('metrics')
  async metrics(@Res() res: ServerResponse): Promise<void> {
    const body = await registry.metrics();
    res.writeHead(200, { 'content-type': registry.contentType });
    res.end(body);
  }
}

import type { ServerResponse } from 'node:http';
import { Controller, Get, Res } from '@nestjs/common';
import { registry } from '@changeover/telemetry';
import { openApiDocument } from './openapi.js';

@Controller()
export class MetaController {
  @Get('openapi.json')
  openapi(): Record<string, unknown> {
    return openApiDocument();
  }

  @Get('health')
  health(): { status: 'ok' } {
    return { status: 'ok' };
  }

  @Get('metrics')
  async metrics(@Res() res: ServerResponse): Promise<void> {
    const body = await registry.metrics();
    res.writeHead(200, { 'content-type': registry.contentType });
    res.end(body);
  }
}

import { Body, Controller, Get, HttpCode, Inject, Param, Post, Query, Req, Res } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RolloutCommands } from '../rollout/rollout.commands.js';
import { Authz } from './auth.js';
import { openApiDocument } from './openapi.js';
import { READINESS, type Readiness } from './readiness.js';

async function readRaw(req: IncomingMessage, limit = 512 * 1024 * 1024): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) break;
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** One line per route: authorise, hand the body to the application, return its answer. */
@Controller()
export class RolloutController {
  constructor(
    @Inject(RolloutCommands) private readonly api: RolloutCommands,
    @Inject(Authz) private readonly authz: Authz,
    @Inject(READINESS) private readonly readiness: Readiness,
  ) {}

  @Get('health') health() { return { status: 'ok' }; }
  @Get('health/live') live() { return { status: 'ok' }; }
  @Get('health/ready') async ready(@Res() res: ServerResponse) { const checks = await this.readiness(); const ok = Object.values(checks).every(Boolean); res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: ok ? 'ok' : 'unavailable', checks })); }
  @Get('openapi.json') openapi() { return openApiDocument(); }

  @Post('rollouts') @HttpCode(201) create(@Body() body: unknown, @Req() req: IncomingMessage) { return this.api.create(body, this.authz.actor(req, 'operator')); }
  @Post('rollouts/from-image') @HttpCode(201) async fromImage(@Req() req: IncomingMessage, @Query('policy') policy?: string, @Query('rolloutId') rolloutId?: string) { const actor = this.authz.actor(req, 'operator'); return this.api.createFromImage(await readRaw(req), { ...(policy ? { policy } : {}), ...(rolloutId ? { rolloutId } : {}) }, actor); }
  @Get('rollouts') list(@Req() req: IncomingMessage, @Query('limit') limit?: string) { this.authz.actor(req, 'viewer'); return this.api.list(Number(limit ?? 100) || 100); }
  @Get('rollouts/:id') show(@Param('id') id: string, @Req() req: IncomingMessage, @Query('nodes') nodes?: string) { this.authz.actor(req, 'viewer'); return this.api.show(id, { nodes: nodes === 'true' }); }
  @Post('rollouts/:id/force') @HttpCode(200) force(@Param('id') id: string, @Body() body: unknown, @Req() req: IncomingMessage) { return this.api.force(id, body, this.authz.actor(req, 'operator')); }
  @Post('rollouts/:id/cancel') @HttpCode(200) cancel(@Param('id') id: string, @Body() body: unknown, @Req() req: IncomingMessage) { return this.api.cancel(id, body, this.authz.actor(req, 'operator')); }
  @Post('rollouts/:id/revote') @HttpCode(200) revote(@Param('id') id: string, @Body() body: unknown, @Req() req: IncomingMessage) { return this.api.revote(id, body, this.authz.actor(req, 'operator')); }
  @Post('rollouts/:id/resume') @HttpCode(200) resume(@Param('id') id: string, @Body() body: unknown, @Req() req: IncomingMessage) { return this.api.resume(id, body, this.authz.actor(req, 'operator')); }
  @Post('rollouts/:id/regress') @HttpCode(200) regress(@Param('id') id: string, @Body() body: unknown, @Req() req: IncomingMessage) { return this.api.regress(id, body, this.authz.actor(req, 'operator')); }
  @Post('plans') @HttpCode(200) plan(@Body() body: unknown, @Req() req: IncomingMessage) { this.authz.actor(req, 'operator'); return this.api.plan(body); }
}

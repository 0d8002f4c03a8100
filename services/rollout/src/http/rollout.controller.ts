import { Body, Controller, Get, HttpCode, Inject, Param, Post, Query, Req, Res } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ChangeoverError } from '@changeover/contracts';
import { auditMetadataOf, Caller, Public, Roles, type Principal } from '@changeover/http-auth';
import { RolloutCommands } from '../rollout/rollout.commands.js';
import { openApiDocument } from './openapi.js';
import { READINESS, type Readiness } from './readiness.js';

/** Injection token of the request limits. */
export const HTTP_LIMITS = 'ROLLOUT_HTTP_LIMITS';
export interface HttpLimits {
  maxImageBytes: number;
}

/** The body as a stream, refused once it passes the limit: an update image is never held whole. */
export async function* streamRaw(req: IncomingMessage, limit: number): AsyncGenerator<Uint8Array> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw new ChangeoverError('TOO_LARGE', `request body of ${declared} bytes exceeds the limit of ${limit}`, { limit });
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) throw new ChangeoverError('TOO_LARGE', `request body exceeds the limit of ${limit} bytes`, { limit });
    yield c as Buffer;
  }
  if (size === 0) throw new ChangeoverError('VALIDATION_FAILED', 'the request body must be an update image (.tar.gz)');
}

const who = (p: Principal) => auditMetadataOf(p);

/** One line per route: the role it needs, the body to the application, its answer back. */
@Controller()
export class RolloutController {
  constructor(
    @Inject(RolloutCommands) private readonly api: RolloutCommands,
    @Inject(READINESS) private readonly readiness: Readiness,
    @Inject(HTTP_LIMITS) private readonly limits: HttpLimits,
  ) {}

  @Get('health') @Public() health() { return { status: 'ok' }; }
  @Get('health/live') @Public() live() { return { status: 'ok' }; }
  @Get('health/ready') @Public() async ready(@Res() res: ServerResponse) { const checks = await this.readiness(); const ok = Object.values(checks).every(Boolean); res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: ok ? 'ok' : 'unavailable', checks })); }
  @Get('openapi.json') @Public() openapi() { return openApiDocument(); }

  @Post('rollouts') @Roles('operator') @HttpCode(201) create(@Body() body: unknown, @Caller() p: Principal) { return this.api.create(body, who(p)); }
  @Post('rollouts/from-image') @Roles('operator') @HttpCode(201) async fromImage(@Req() req: IncomingMessage, @Caller() p: Principal, @Query('policy') policy?: string, @Query('rolloutId') rolloutId?: string) { return this.api.createFromImage(streamRaw(req, this.limits.maxImageBytes), { ...(policy ? { policy } : {}), ...(rolloutId ? { rolloutId } : {}) }, who(p)); }
  @Get('rollouts') @Roles('viewer') list(@Query() query: Record<string, unknown>) { return this.api.list(query); }
  @Get('audit') @Roles('operator') audit(@Query() query: Record<string, unknown>) { return this.api.audit(query); }
  @Get('rollouts/:id') @Roles('viewer') show(@Param('id') id: string, @Query() query: Record<string, unknown>) { return this.api.show(id, query); }
  @Post('rollouts/:id/force') @Roles('admin') @HttpCode(200) force(@Param('id') id: string, @Body() body: unknown, @Caller() p: Principal) { return this.api.force(id, body, who(p)); }
  @Post('rollouts/:id/cancel') @Roles('operator') @HttpCode(200) cancel(@Param('id') id: string, @Body() body: unknown, @Caller() p: Principal) { return this.api.cancel(id, body, who(p)); }
  @Post('rollouts/:id/revote') @Roles('operator') @HttpCode(200) revote(@Param('id') id: string, @Body() body: unknown, @Caller() p: Principal) { return this.api.revote(id, body, who(p)); }
  @Post('rollouts/:id/resume') @Roles('operator') @HttpCode(200) resume(@Param('id') id: string, @Body() body: unknown, @Caller() p: Principal) { return this.api.resume(id, body, who(p)); }
  @Post('rollouts/:id/pause') @Roles('operator') @HttpCode(200) pause(@Param('id') id: string, @Body() body: unknown, @Caller() p: Principal) { return this.api.pause(id, body, who(p)); }
  @Post('rollouts/:id/regress') @Roles('operator') @HttpCode(200) regress(@Param('id') id: string, @Body() body: unknown, @Caller() p: Principal) { return this.api.regress(id, body, who(p)); }
  @Post('rollouts/:id/retry') @Roles('operator') @HttpCode(200) retry(@Param('id') id: string, @Body() body: unknown, @Caller() p: Principal) { return this.api.retry(id, body, who(p)); }
  @Post('rollouts/:id/nodes/:nodeId/retry') @Roles('operator') @HttpCode(200) retryNode(@Param('id') id: string, @Param('nodeId') nodeId: string, @Body() body: unknown, @Caller() p: Principal) { return this.api.retryNode(id, nodeId, body, who(p)); }
  @Post('plans') @Roles('operator') @HttpCode(200) plan(@Body() body: unknown) { return this.api.plan(body); }
}

import { Controller, Get, Inject, Param, Query, Req, Res } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ChangeoverError, type FleetPage, type WhoAmI } from '@changeover/contracts';
import { Caller, Public, Roles, type Principal } from '@changeover/http-auth';
import { CONSOLE_CSS, CONSOLE_HEADERS, CONSOLE_HTML } from './console.assets.js';
import type { RolloutStreams } from './rollout-stream.js';

/** Injection token of what the console routes use. */
export const CONSOLE = 'ROLLOUT_CONSOLE';
export interface ConsoleDeps {
  /** The browser modules by file name. */
  app: Map<string, Buffer>;
  streams: RolloutStreams;
  fleet(query: Record<string, unknown>): Promise<FleetPage>;
}

const send = (res: ServerResponse, type: string, body: string | Buffer) => res.writeHead(200, { ...CONSOLE_HEADERS, 'content-type': type }).end(body);

/**
 * The operator console: its page and modules (open, they hold no data), and the read routes it
 * needs beside the rollout API. Every data route takes the bearer token and its role.
 */
@Controller()
export class ConsoleController {
  constructor(@Inject(CONSOLE) private readonly deps: ConsoleDeps) {}

  @Get('console') @Public() page(@Res() res: ServerResponse) { send(res, 'text/html; charset=utf-8', CONSOLE_HTML); }
  @Get('console/console.css') @Public() css(@Res() res: ServerResponse) { send(res, 'text/css; charset=utf-8', CONSOLE_CSS); }
  @Get('console/app/:file') @Public() module(@Param('file') file: string, @Res() res: ServerResponse) {
    const body = this.deps.app.get(file);
    if (!body) throw new ChangeoverError('NOT_FOUND', this.deps.app.size ? `no console module ${file}` : 'the console is not built (npx tsc -b services/rollout)');
    send(res, 'text/javascript; charset=utf-8', body);
  }

  @Get('whoami') @Roles('viewer') whoami(@Caller() p: Principal): WhoAmI { return { name: p.name, role: p.role, tokenId: p.tokenId }; }
  @Get('fleet') @Roles('viewer') fleet(@Query() query: Record<string, unknown>) { return this.deps.fleet(query); }
  @Get('rollouts/:id/stream') @Roles('viewer') stream(@Param('id') id: string, @Req() req: IncomingMessage, @Res() res: ServerResponse) { return this.deps.streams.serve(id, req, res); }
}

import type { IncomingMessage } from 'node:http';
import { Body, Controller, HttpCode, Inject, Post, Req } from '@nestjs/common';
import { Roles } from '@changeover/http-auth';
import { ChangeoverError, SelectModulesRequest, type SelectModulesReply } from '@changeover/contracts';
import type { RegistryDomain } from '../registry.domain.js';
import type { ImportResult } from '../images/image.service.js';
import { DOMAIN } from './http.tokens.js';
import { ZodPipe } from './http.support.js';

/** Update images (claims 20–23) and module selection (claim 3). */
@Controller()
export class UpdatesController {
  constructor(@Inject(DOMAIN) private readonly d: RegistryDomain) {}

  /** Body: the .tar.gz itself (application/gzip or application/octet-stream), read as a stream. */
  @Post('images')
  @Roles('operator')
  @HttpCode(201)
  async importImage(@Req() req: IncomingMessage): Promise<ImportResult> {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > this.d.maxImageBytes) throw new ChangeoverError('TOO_LARGE', `request body of ${declared} bytes exceeds the limit of ${this.d.maxImageBytes}`);
    return this.d.images.import(req);
  }

  @Post('select-modules')
  @Roles('viewer')
  @HttpCode(200)
  select(@Body(new ZodPipe(SelectModulesRequest)) body: SelectModulesRequest): Promise<SelectModulesReply> {
    return this.d.selection.select(body);
  }
}

import { Body, Controller, Get, HttpCode, Inject, Post, Query } from '@nestjs/common';
import { Caller, Roles, type Principal } from '@changeover/http-auth';
import { ClusterVersionService } from './cluster-version.service.js';

/** Cluster infrastructure version: status (viewer) and adjust (admin). */
@Controller('cluster-version')
export class ClusterVersionController {
  constructor(@Inject(ClusterVersionService) private readonly svc: ClusterVersionService) {}

  @Get() @Roles('viewer') status(@Query('version') version?: string) { return this.svc.status(version); }
  @Post('adjust') @Roles('admin') @HttpCode(200) adjust(@Body() body: unknown, @Caller() p: Principal) { return this.svc.adjust(body, p.name); }
}

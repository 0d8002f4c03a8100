import type { IncomingMessage, ServerResponse } from 'node:http';
import { Body, Controller, Get, HttpCode, Inject, Param, Post, Put, Query, Req, Res, StreamableFile } from '@nestjs/common';
import { Roles } from '@changeover/http-auth';
import { ChangeoverError, GetPackagesRequest, PublishPackageRequest, type GetPackagesReply, type PackageSummary, type PublishPackageReply, type SignedPackage } from '@changeover/contracts';
import type { z } from 'zod';
import type { RegistryDomain } from '../registry.domain.js';
import { DigestParam, ListPackagesQuery, PackageParams } from './http.schemas.js';
import { DOMAIN } from './http.tokens.js';
import { ZodPipe } from './http.support.js';

/** Packages and module blobs (claims 1, 2, 25, 26). Upload blobs with PUT /blobs/:digest, then POST /packages. */
@Controller()
export class PackagesController {
  constructor(@Inject(DOMAIN) private readonly d: RegistryDomain) {}

  @Get('packages')
  @Roles('viewer')
  async list(@Query(new ZodPipe(ListPackagesQuery, 'query')) q: z.infer<typeof ListPackagesQuery>): Promise<{ packages: PackageSummary[] }> {
    return { packages: await this.d.packages.list(q.name, q.limit) };
  }

  /** 201 when stored, 200 when the same content was already there. */
  @Post('packages')
  @Roles('operator')
  async publish(@Body(new ZodPipe(PublishPackageRequest, 'package')) body: z.infer<typeof PublishPackageRequest>, @Res({ passthrough: true }) res: ServerResponse): Promise<PublishPackageReply> {
    const reply = await this.d.packages.publish(body);
    res.statusCode = reply.created ? 201 : 200;
    return reply;
  }

  @Post('packages/get')
  @Roles('viewer')
  @HttpCode(200)
  getMany(@Body(new ZodPipe(GetPackagesRequest)) body: z.infer<typeof GetPackagesRequest>): Promise<z.infer<typeof GetPackagesReply>> {
    return this.d.packages.getPackages(body.packages);
  }

  @Get('packages/:name/:version')
  @Roles('viewer')
  get(@Param(new ZodPipe(PackageParams, 'path')) p: z.infer<typeof PackageParams>): Promise<SignedPackage> {
    return this.d.packages.getPackage(p);
  }

  /** Streams the body into the object store, hashing as it goes; stored only when the digest matches. */
  @Put('blobs/:digest')
  @Roles('operator')
  async upload(@Param('digest', new ZodPipe(DigestParam, 'digest')) digest: string, @Req() req: IncomingMessage, @Res({ passthrough: true }) res: ServerResponse): Promise<{ digest: string; created: boolean; size: number }> {
    const reply = await this.d.packages.uploadBlob(digest, req);
    res.statusCode = reply.created ? 201 : 200;
    return reply;
  }

  @Get('blobs/:digest')
  @Roles('viewer')
  async download(@Param('digest', new ZodPipe(DigestParam, 'digest')) digest: string): Promise<StreamableFile> {
    const blob = await this.d.blobs.get(digest);
    if (!blob) throw new ChangeoverError('NOT_FOUND', `no blob ${digest}`, { digest });
    return new StreamableFile(blob.stream, { type: 'application/octet-stream', length: blob.size });
  }
}

import { Body, Controller, Get, HttpCode, Inject, Param, Post, Query } from '@nestjs/common';
import { Roles } from '@changeover/http-auth';
import type { RateLimiter } from '@changeover/messaging';
import { EnrollNodeRequest, RevokeNodeRequest, type EnrollNodeReply, type ListNodesReply, type NodeRecord, type RevokeNodeReply } from '@changeover/contracts';
import { enrollNode } from '../nodes/node-identity.js';
import type { z } from 'zod';
import type { RegistryDomain } from '../registry.domain.js';
import type { InventoryStatus } from '../nodes/node.service.js';
import { ListNodesQuery, NodeIdParam } from './http.schemas.js';
import { DOMAIN, ENROLL_LIMITER } from './http.tokens.js';
import { ZodPipe } from './http.support.js';

/** POST /nodes/:nodeId/revoke body (the node id comes from the path; an empty body is fine). */
const RevokeNodeBody = RevokeNodeRequest.omit({ nodeId: true }).default({ keepLatest: false });

/** Nodes: enrollment and queries by class, label and status (claims 3, 24). */
@Controller('nodes')
export class NodesController {
  constructor(
    @Inject(DOMAIN) private readonly d: RegistryDomain,
    @Inject(ENROLL_LIMITER) private readonly enrollLimiter: RateLimiter,
  ) {}

  @Get()
  @Roles('viewer')
  list(@Query(new ZodPipe(ListNodesQuery, 'query')) q: z.infer<typeof ListNodesQuery>): Promise<z.infer<typeof ListNodesReply>> {
    return this.d.nodes.list(q);
  }

  /** The stored inventory, and `stale: true` when the node's last heartbeat claimed another inventory digest. */
  @Get(':nodeId/inventory')
  @Roles('viewer')
  inventory(@Param('nodeId', new ZodPipe(NodeIdParam, 'nodeId')) nodeId: string): Promise<InventoryStatus> {
    return this.d.nodes.inventoryStatus(nodeId);
  }

  @Get(':nodeId')
  @Roles('viewer')
  get(@Param('nodeId', new ZodPipe(NodeIdParam, 'nodeId')) nodeId: string): Promise<NodeRecord> {
    return this.d.nodes.get(nodeId);
  }

  /** With REGISTRY_NATS_AUTHORITY set, the reply carries the node's NATS credentials (`natsCredentials.creds`, shown once). */
  @Post()
  @Roles('operator')
  enroll(@Body(new ZodPipe(EnrollNodeRequest, 'enrollment')) body: EnrollNodeRequest): Promise<EnrollNodeReply> {
    this.enrollLimiter.check('', 'enrollment');
    return enrollNode(this.d, body);
  }

  /** Revokes the node's NATS credentials (all, or all but the newest with `keepLatest`) and pushes the revocation to the servers. */
  @Post(':nodeId/revoke')
  @Roles('admin')
  @HttpCode(200)
  revoke(@Param('nodeId', new ZodPipe(NodeIdParam, 'nodeId')) nodeId: string, @Body(new ZodPipe(RevokeNodeBody, 'revocation')) body: z.infer<typeof RevokeNodeBody>): Promise<RevokeNodeReply> {
    return this.d.identities.revoke(nodeId, { keepLatest: body.keepLatest });
  }
}

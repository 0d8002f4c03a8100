import { Body, Controller, Get, Inject, Param, Post, Query } from '@nestjs/common';
import { EnrollNodeRequest, type ListNodesReply, type NodeRecord } from '@changeover/contracts';
import type { z } from 'zod';
import type { RegistryDomain } from '../registry.domain.js';
import type { InventoryStatus } from '../nodes/node.service.js';
import { ListNodesQuery, NodeIdParam } from './http.schemas.js';
import { DOMAIN } from './http.tokens.js';
import { ZodPipe } from './http.support.js';

/** Nodes: enrollment and queries by class, label and status (claims 3, 24). */
@Controller('nodes')
export class NodesController {
  constructor(@Inject(DOMAIN) private readonly d: RegistryDomain) {}

  @Get()
  list(@Query(new ZodPipe(ListNodesQuery, 'query')) q: z.infer<typeof ListNodesQuery>): Promise<z.infer<typeof ListNodesReply>> {
    return this.d.nodes.list(q);
  }

  /** The stored inventory, and `stale: true` when the node's last heartbeat claimed another inventory digest. */
  @Get(':nodeId/inventory')
  inventory(@Param('nodeId', new ZodPipe(NodeIdParam, 'nodeId')) nodeId: string): Promise<InventoryStatus> {
    return this.d.nodes.inventoryStatus(nodeId);
  }

  @Get(':nodeId')
  get(@Param('nodeId', new ZodPipe(NodeIdParam, 'nodeId')) nodeId: string): Promise<NodeRecord> {
    return this.d.nodes.get(nodeId);
  }

  @Post()
  enroll(@Body(new ZodPipe(EnrollNodeRequest, 'enrollment')) body: EnrollNodeRequest): Promise<NodeRecord> {
    return this.d.nodes.enroll(body);
  }
}

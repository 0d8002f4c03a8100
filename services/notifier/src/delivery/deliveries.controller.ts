import { Controller, Get, HttpCode, Inject, Param, Post, Query } from '@nestjs/common';
import { ListDeliveriesQuery, parse } from '@changeover/contracts';
import { Roles } from '@changeover/http-auth';
import { DeliveryStore } from './delivery.store.js';

@Controller('deliveries')
export class DeliveriesController {
  constructor(@Inject(DeliveryStore) private readonly store: DeliveryStore) {}

  @Get() @Roles('viewer') list(@Query() query: unknown) { return this.store.list(parse(ListDeliveriesQuery, query, 'query')); }
  @Get(':id') @Roles('viewer') get(@Param('id') id: string) { return this.store.get(id); }
  @Post(':id/redeliver') @Roles('operator') @HttpCode(202) redeliver(@Param('id') id: string) { return this.store.redeliver(id); }
}

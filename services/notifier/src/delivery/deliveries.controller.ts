import { Controller, Get, HttpCode, Inject, Param, Post, Query } from '@nestjs/common';
import { ListDeliveriesQuery, parse } from '@changeover/contracts';
import { DeliveryStore } from './delivery.store.js';

@Controller('deliveries')
export class DeliveriesController {
  constructor(@Inject(DeliveryStore) private readonly store: DeliveryStore) {}

  @Get() list(@Query() query: unknown) { return this.store.list(parse(ListDeliveriesQuery, query, 'query')); }
  @Get(':id') get(@Param('id') id: string) { return this.store.get(id); }
  @Post(':id/redeliver') @HttpCode(202) redeliver(@Param('id') id: string) { return this.store.redeliver(id); }
}

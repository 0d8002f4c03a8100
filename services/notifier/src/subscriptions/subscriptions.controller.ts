import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post } from '@nestjs/common';
import { CreateSubscriptionRequest, parse } from '@changeover/contracts';
import { SubscriptionStore } from './subscription.store.js';

@Controller('subscriptions')
export class SubscriptionsController {
  constructor(@Inject(SubscriptionStore) private readonly store: SubscriptionStore) {}

  @Post() create(@Body() body: unknown) { return this.store.create(parse(CreateSubscriptionRequest, body ?? {}, 'subscription')); }
  @Get() list() { return this.store.list(); }
  @Get(':id') get(@Param('id') id: string) { return this.store.get(id); }
  @Delete(':id') @HttpCode(204) remove(@Param('id') id: string) { return this.store.remove(id); }
}

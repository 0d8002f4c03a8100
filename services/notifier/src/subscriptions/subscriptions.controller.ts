import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post } from '@nestjs/common';
import { CreateSubscriptionRequest, parse } from '@changeover/contracts';
import { Roles } from '@changeover/http-auth';
import { SubscriptionStore } from './subscription.store.js';

@Controller('subscriptions')
export class SubscriptionsController {
  constructor(@Inject(SubscriptionStore) private readonly store: SubscriptionStore) {}

  @Post() @Roles('operator') create(@Body() body: unknown) { return this.store.create(parse(CreateSubscriptionRequest, body ?? {}, 'subscription')); }
  @Get() @Roles('viewer') list() { return this.store.list(); }
  @Get(':id') @Roles('viewer') get(@Param('id') id: string) { return this.store.get(id); }
  @Delete(':id') @Roles('operator') @HttpCode(204) remove(@Param('id') id: string) { return this.store.remove(id); }
}

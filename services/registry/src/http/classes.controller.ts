import { Body, Controller, Get, Inject, Param, Put } from '@nestjs/common';
import { Roles } from '@changeover/http-auth';
import type { ClassRecord } from '@changeover/contracts';
import type { z } from 'zod';
import type { RegistryDomain } from '../registry.domain.js';
import { ClassIdParam, SetClassBody } from './http.schemas.js';
import { DOMAIN } from './http.tokens.js';
import { ZodPipe } from './http.support.js';

/** Node classes: named software configurations (claim 24). */
@Controller('classes')
export class ClassesController {
  constructor(@Inject(DOMAIN) private readonly d: RegistryDomain) {}

  @Get()
  @Roles('viewer')
  async list(): Promise<{ classes: ClassRecord[] }> {
    return { classes: await this.d.classes.list() };
  }

  @Get(':classId')
  @Roles('viewer')
  get(@Param('classId', new ZodPipe(ClassIdParam, 'classId')) classId: string): Promise<ClassRecord> {
    return this.d.classes.get(classId);
  }

  @Put(':classId')
  @Roles('operator')
  set(@Param('classId', new ZodPipe(ClassIdParam, 'classId')) classId: string, @Body(new ZodPipe(SetClassBody, 'class')) body: z.infer<typeof SetClassBody>): Promise<ClassRecord> {
    return this.d.classes.set({ ...body, classId });
  }
}

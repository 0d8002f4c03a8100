import { Body, Controller, Get, Inject, Param, Put } from '@nestjs/common';
import { Caller, Roles, type Principal } from '@changeover/http-auth';
import { ClassWindowsStore } from './class-windows.js';

/** A class's maintenance windows: show (viewer) and set (operator). */
@Controller('classes/:classId/windows')
export class ClassWindowsController {
  constructor(@Inject(ClassWindowsStore) private readonly windows: ClassWindowsStore) {}

  @Get() @Roles('viewer') show(@Param('classId') classId: string) { return this.windows.get(classId); }
  @Put() @Roles('operator') set(@Param('classId') classId: string, @Body() body: unknown, @Caller() p: Principal) { return this.windows.set(classId, body, p.name); }
}

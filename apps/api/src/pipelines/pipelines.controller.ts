import { Controller, Get } from '@nestjs/common';
import { Auth } from '../auth/auth-policy.js';
import { PipelinesService } from './pipelines.service.js';

@Controller('admin/pipelines')
export class PipelinesController {
  constructor(private readonly pipelines: PipelinesService) {}

  @Get()
  @Auth.admin('viewer')
  snapshot() {
    return this.pipelines.snapshot();
  }
}

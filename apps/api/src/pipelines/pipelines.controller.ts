import { Controller, Get } from '@nestjs/common';
import { pipelinesSnapshotSchema } from '@pipedec/contracts';
import { Auth } from '../auth/auth-policy.js';
import { ApiDoc } from '../openapi/route-doc.js';
import { PipelinesService } from './pipelines.service.js';

@Controller('admin/pipelines')
export class PipelinesController {
  constructor(private readonly pipelines: PipelinesService) {}

  @Get()
  @Auth.admin('viewer')
  @ApiDoc({
    summary: 'Live pipelines: stages, health, queue depth, recent hit rate',
    response: pipelinesSnapshotSchema,
  })
  snapshot() {
    return this.pipelines.snapshot();
  }
}

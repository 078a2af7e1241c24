import { Controller, Get, Res } from '@nestjs/common';
import type { Response } from 'express';
import { Auth } from '../auth/auth-policy.js';
import { HealthService } from './health.service.js';

@Controller()
export class HealthController {
  constructor(private readonly health: HealthService) {}

  /** 200 while the database and Redis answer (pipelines may still be starting), else 503. */
  @Get('health')
  @Auth.public()
  async get(@Res({ passthrough: true }) res: Response) {
    const h = await this.health.check();
    res.status(h.status === 'down' ? 503 : 200);
    return h;
  }
}

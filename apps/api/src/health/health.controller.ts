import { Controller, Get, Res } from '@nestjs/common';
import type { Response } from 'express';
import { Auth } from '../auth/auth-policy.js';
import { ApiDoc } from '../openapi/route-doc.js';
import { HealthService } from './health.service.js';

@Controller()
export class HealthController {
  constructor(private readonly health: HealthService) {}

  /**
   * Readiness: 200 while this replica can serve generation (database and Redis answer and a
   * pipeline is whole), else 503 with the reason in the body. Load balancers route on it.
   */
  @Get('health')
  @Auth.public()
  @ApiDoc({
    summary: 'Readiness: 200 when the database, Redis and a whole pipeline answer, else 503',
    errors: [503],
  })
  async get(@Res({ passthrough: true }) res: Response) {
    const h = await this.health.check();
    res.status(h.status === 'ok' ? 200 : 503);
    return h;
  }

  /** Liveness: 200 while the process answers, whatever its dependencies do (do not restart it for them). */
  @Get('health/live')
  @Auth.public()
  @ApiDoc({ summary: 'Liveness: 200 while the process answers' })
  live() {
    return { status: 'live' };
  }
}

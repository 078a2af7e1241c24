import { Module } from '@nestjs/common';
import { AdminAuthModule } from '../admin-auth/admin-auth.module.js';
import { PipelinesModule } from '../pipelines/pipelines.module.js';
import { LiveTickets } from './live-tickets.service.js';
import { LiveController } from './live.controller.js';
import { LiveGateway } from './live.gateway.js';

/** Live updates for admins over socket.io (namespace ADMIN_LIVE.namespace). */
@Module({
  imports: [AdminAuthModule, PipelinesModule],
  controllers: [LiveController],
  providers: [LiveTickets, LiveGateway],
})
export class LiveModule {}

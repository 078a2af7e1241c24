import { Module } from '@nestjs/common';
import { QuotasModule } from '../quotas/quotas.module.js';
import { TenantsModule } from '../tenants/tenants.module.js';
import { UsageController } from './usage.controller.js';
import { UsageRepository } from './usage.repository.js';
import { UsageService } from './usage.service.js';

@Module({
  imports: [TenantsModule, QuotasModule],
  controllers: [UsageController],
  providers: [UsageService, UsageRepository],
  exports: [UsageService],
})
export class UsageModule {}

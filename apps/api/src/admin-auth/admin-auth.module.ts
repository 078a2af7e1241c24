import { Module } from '@nestjs/common';
import { AdminAuthController } from './admin-auth.controller.js';
import { AdminAuthService } from './admin-auth.service.js';
import { LoginLimiter } from './login-limiter.js';

@Module({
  controllers: [AdminAuthController],
  providers: [AdminAuthService, LoginLimiter],
  exports: [AdminAuthService],
})
export class AdminAuthModule {}

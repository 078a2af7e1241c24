import { Controller, Get, HttpCode, Inject, Post, Req, Res } from '@nestjs/common';
import { adminLoginSchema, adminMeSchema, loginResponseSchema } from '@pipedec/contracts';
import type { Request, Response } from 'express';
import type { z } from 'zod';
import { Auth } from '../auth/auth-policy.js';
import { ADMIN_COOKIE, CurrentAdmin, type AdminPrincipal } from '../auth/principal.js';
import { ValidBody } from '../common/route-inputs.js';
import { API_CONFIG, type ApiConfig } from '../config/api-config.js';
import { ApiDoc } from '../openapi/route-doc.js';
import { AdminAuthService } from './admin-auth.service.js';
import { clientAddress } from './client-address.js';

@Controller('admin')
export class AdminAuthController {
  constructor(
    private readonly auth: AdminAuthService,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  @Post('login')
  @HttpCode(200)
  @Auth.public()
  @ApiDoc({
    summary: 'Open an admin session (rate-limited); also sets the pd_admin_session cookie',
    response: loginResponseSchema,
    errors: [401, 429],
  })
  async login(
    @ValidBody(adminLoginSchema) { email, password }: z.infer<typeof adminLoginSchema>,
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
  ) {
    const session = await this.auth.login(
      email,
      password,
      clientAddress(req, this.config.DASHBOARD_FORWARD_SECRET),
    );
    res.cookie(ADMIN_COOKIE, session.token, {
      httpOnly: true,
      sameSite: 'strict',
      // req.secure reads X-Forwarded-Proto only from proxies TRUST_PROXY names.
      secure: req.secure,
      expires: session.expiresAt,
    });
    return session;
  }

  @Post('logout')
  @HttpCode(204)
  @Auth.admin('viewer')
  @ApiDoc({ summary: 'End the session' })
  async logout(@CurrentAdmin() admin: AdminPrincipal): Promise<void> {
    await this.auth.logout(admin);
  }

  @Get('me')
  @Auth.admin('viewer')
  @ApiDoc({ summary: 'The signed-in admin', response: adminMeSchema })
  me(@CurrentAdmin() admin: AdminPrincipal) {
    return { id: admin.adminUserId, email: admin.email, role: admin.role };
  }
}

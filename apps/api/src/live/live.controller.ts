import { Controller, HttpCode, Post } from '@nestjs/common';
import { Auth } from '../auth/auth-policy.js';
import { CurrentAdmin, type AdminPrincipal } from '../auth/principal.js';
import { LiveTickets } from './live-tickets.service.js';

@Controller('admin/live')
export class LiveController {
  constructor(private readonly tickets: LiveTickets) {}

  @Post('tickets')
  @HttpCode(201)
  @Auth.admin('viewer')
  issue(@CurrentAdmin() admin: AdminPrincipal) {
    return this.tickets.issue(admin);
  }
}
